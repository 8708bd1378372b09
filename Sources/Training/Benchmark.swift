// `droplab bench`: throughput figures for this machine. Training runs the real Trainer (model,
// masking, optimizer, metrics) on random token batches.

import Autograd
import BERT
import CBLAS
import Foundation
import Text

public enum Benchmark {
    /// sgemm GFLOP/s on square n x n matrices with OpenBLAS using all kernel threads (the
    /// practical peak).
    public static func sgemm(n: Int = 2048, repeats: Int = 5) -> Double {
        openblas_set_num_threads(Int32(Parallel.threads))
        defer { openblas_set_num_threads(1) }
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

    /// bf16 x bf16 -> fp32 GFLOP/s of the oneDNN products of bf16 tapes on square n x n matrices,
    /// split across the kernel threads as in training (the bf16 peak; best of `repeats` after one
    /// call that creates the primitive).
    public static func bf16gemm(n: Int = 2048, repeats: Int = 5) -> Double {
        let a = Storage(count: n * n), b = Storage(count: n * n), c = Storage(count: n * n)
        for i in 0..<n * n { a.pointer[i] = Float(i % 7) * 0.1; b.pointer[i] = Float(i % 5) * 0.1 }
        let ah = BF16.copy(a.pointer, count: n * n), bh = BF16.copy(b.pointer, count: n * n)
        var best = Double.infinity
        for r in 0...repeats {
            let t = Date()
            Autograd.bf16gemm(false, false, n, n, n, ah.pointer, bh.pointer, accumulate: false, c.pointer)
            if r > 0 { best = min(best, Date().timeIntervalSince(t)) }
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

    /// Forward-only tokens/s (no tape), as evaluators run the model.
    public static func inference(preset: String, vocabSize: Int, seqLen: Int = 128, batch: Int = 32, repeats: Int = 3) throws -> Double {
        Storage.drainPool()
        let model = BertModel(config: try BertConfig(preset: preset, vocabSize: vocabSize))
        model.initialize(seed: 1)
        var rng = RNG(seed: 3)
        let ids = (0..<batch * seqLen).map { _ in Int32(5 + rng.int(vocabSize - 5)) }
        var best = Double.infinity
        for _ in 0..<(repeats + 1) {
            let t = Date()
            let tape = Tape(recording: false)
            _ = model.mlmLogits(tape, model.encode(tape, Batch(ids: ids, batchSize: batch, seqLen: seqLen)),
                                rows: (0..<Int32(batch)).map { $0 * Int32(seqLen) })
            best = min(best, Date().timeIntervalSince(t))
        }
        return Double(batch * seqLen) / best
    }

    /// Bytes a training step needs by construction: parameters, gradients and two AdamW
    /// moments (16 bytes per parameter), plus the activations the tape keeps for backward
    /// (what the kernels save: projections, attention probabilities (twice with dropout),
    /// dropout masks, FFN activations, LayerNorm outputs, the MLM head at masked rows).
    public static func analyticNeedBytes(_ c: BertConfig, batch B: Int, seqLen T: Int, dropout p: Float,
                                         maskedFraction: Double = 0.15) -> Double {
        let N = Double(B * T), C = Double(c.hiddenSize), F = Double(c.intermediateSize)
        let drop = p > 0 ? 2.0 : 0.0                      // mask + output per dropout site
        let probs = Double(B * c.numHeads * T * T) * (p > 0 ? 2 : 1)
        let perLayer = N * C * (3 + 1 + 1 + drop + 1 + 1 + 1 + drop + 1 + 1) + 3 * N * F + probs   // F: FFN in, GELU and its slope
        let embeddings = N * C * (3 + 2 + 1 + drop)
        let M = maskedFraction * N
        let head = M * C * 4 + M * Double(c.vocabSize)
        let params = Double(BertModel.parameterSpecs(c, head: .mlm).reduce(0) { $0 + $1.shape.reduce(1, *) })
        return 16 * params + 4 * (Double(c.numLayers) * perLayer + embeddings + head)
    }

    /// Peak resident set size of this process so far, in MB.
    public static func peakRSSMegabytes() -> Double {
        var u = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
        return Double(u.ru_maxrss) * 1024 / 1e6   // ru_maxrss is in KiB
    }

    /// Time `steps` optimizer steps (after `warmup` untimed ones) of MLM pretraining through the
    /// real Trainer, model, masking and optimizer, on random tokens of a synthetic vocabulary
    /// (the Trainer logs every step; its per-step tokens/s give the median step time).
    public static func trainingStep(preset: String, vocabSize: Int, seqLen: Int = 128, batch: Int = 32, dropout: Float,
                                    precision: Precision = .fp32, steps: Int = 5, warmup: Int = 2) throws -> (tokensPerSecond: Double, secondsPerStep: Double) {
        Storage.drainPool()   // buffers of earlier measurements do not count towards this one's memory
        let tok = try WordPieceTokenizer(vocab: WordPieceTokenizer.specialTokens
                                         + (WordPieceTokenizer.specialTokens.count..<vocabSize).map { "t\($0)" })
        var config = try BertConfig(preset: preset, vocabSize: vocabSize)
        config.hiddenDropout = dropout; config.attentionDropout = dropout
        let model = BertModel(config: config)
        model.initialize(seed: 1)
        var options = TrainerOptions(steps: warmup + steps, schedule: LRSchedule(peak: 1e-4, warmupSteps: 0, totalSteps: warmup + steps),
                                     hiddenDropout: dropout, attentionDropout: dropout, seed: 1)
        options.logEvery = 1
        options.precision = precision
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("droplab-bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = RandomTokens(masker: Pretrain.pretrainMasker(tok), batch: batch, seqLen: seqLen, first: Int32(WordPieceTokenizer.specialTokens.count))
        let trainer = Trainer(model: model, vocab: tok.vocab, data: data, options: options, runDir: dir, loss: Pretrain.mlmLoss)
        var perStep: [Double] = []
        trainer.log = { _ in }
        trainer.onMetrics = { m in if let t = m["tokens_per_s"] { perStep.append(t) } }
        _ = try trainer.run()
        let timed = perStep.dropFirst(warmup).sorted()
        let median = timed[timed.count / 2]   // robust to a step slowed by another process
        return (median, Double(batch * seqLen) / median)
    }
}

/// Endless MLM batches of uniformly random non-special tokens.
struct RandomTokens: TrainingData {
    var cursor: UInt64 = RNG(seed: 2).state
    let masker: Masker
    let batch: Int, seqLen: Int, first: Int32

    mutating func next() throws -> MLMExample? {
        var rng = RNG(state: cursor)
        var ids = (0..<batch * seqLen).map { _ in first + Int32(rng.int(masker.vocabSize - Int(first))) }
        let labels = masker.apply(&ids, rng: &rng)
        cursor = rng.state
        return MLMExample(batch: Batch(ids: ids, batchSize: batch, seqLen: seqLen), labels: labels)
    }
    func tokens(in item: MLMExample) -> Int { item.batch.ids.count }
}
