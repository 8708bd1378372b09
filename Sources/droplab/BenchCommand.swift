import ArgumentParser
import Autograd
import BERT
import Checkpoint
import Foundation
import Text
import Training

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench",
        abstract: "Measure throughput on this machine (training, inference, tokenizer, checkpoints, memory).",
        discussion: "FLOPs are counted as 3x the forward matrix-product FLOPs, with the MLM decoder at masked positions only (the FLOPs the step needs). tools/bench_compare.sh runs this next to Hugging Face transformers and writes BENCHMARKS.md.")
    @Option(parsing: .upToNextOption, help: "Presets to time.") var presets: [String] = ["mini", "small"]
    @Option(parsing: .upToNextOption, help: "Vocabulary sizes.") var vocabSizes: [Int] = [8192, 30522]
    @Option(parsing: .upToNextOption, help: "Dropout settings.") var dropouts: [Float] = [0.0, 0.1]
    @Option(parsing: .upToNextOption, help: "Precisions of the matrix products (fp32, bf16); each configuration is timed in each, one after the other.") var precision: [Precision] = [.fp32]
    @Option(help: "Timed steps per configuration.") var steps = 5
    @Option(help: "Batch size.") var batch = 32
    @Option(help: "Sequence length.") var seqLen = 128
    @Option(help: "Dataset root (tokenizer speed is measured on Wikipedia text when present).") var dataDir: String?
    @Flag(help: "Print one JSON object instead of text.") var json = false

    struct Train: Codable {
        var preset: String; var vocab: Int; var dropout: Float; var precision: String
        var tokens_per_s: Double; var s_per_step: Double; var gflops: Double
        var fraction_of_sgemm: Double
        var fraction_of_peak: Double   // of the row's precision: sgemm (fp32) or bf16gemm (bf16)
    }
    struct Inference: Codable { var preset: String; var vocab: Int; var tokens_per_s: Double }
    struct Report: Codable {
        var machine: [String: String]
        var threads: Int
        var sgemm_gflops: Double
        var bf16_gemm_gflops: Double?      // when bf16 is timed
        var steps: Int
        var train: [Train] = []
        var inference: [Inference] = []
        var tokenizer_mb_s: Double?
        var checkpoint_write_mb_s: Double?
        var checkpoint_read_mb_s: Double?
        var peak_rss_mb: Double = 0        // whole run
        var train_peak_rss_mb: Double = 0  // after the training configurations
        var analytic_need_mb: Double = 0   // of the largest training configuration
    }

    func say(_ s: String) { if !json { print(s) } else { log(s) } }

    func validate() throws {
        for p in presets { try Check.that(BertConfig.presets.contains { $0.name == p }, "presets", "'\(p)' is unknown (known: \(BertConfig.presets.map(\.name).joined(separator: ", ")))") }
        try Check.that(!presets.isEmpty, "presets", "needs at least one preset")
        try Check.that(!vocabSizes.isEmpty, "vocab-sizes", "needs at least one size")
        for v in vocabSizes { try Check.range(v, 64...(1 << 20), "vocab-sizes") }
        try Check.that(!precision.isEmpty, "precision", "needs at least one value")
        for p in precision { try Check.machineRuns(p) }
        try Check.that(!dropouts.isEmpty, "dropouts", "needs at least one value")
        for p in dropouts { try Check.probability(p, "dropouts") }
        try Check.range(steps, 1...10_000, "steps")
        try Check.range(batch, 1...Check.maxBatch, "batch")
        try Check.range(seqLen, 8...Pretrain.maxPositions, "seq-len")
    }

    func run() throws {
        let peak = Benchmark.sgemm()
        var r = Report(machine: Dictionary(uniqueKeysWithValues: Machine.summary), threads: Parallel.threads, sgemm_gflops: peak, steps: steps)
        for (k, v) in Machine.summary { say("\(k): \(v)") }
        say(String(format: "sgemm 2048^3: %.1f GFLOP/s (%d threads)", peak, Parallel.threads))
        if precision.contains(.bf16) {
            r.bf16_gemm_gflops = Benchmark.bf16gemm()
            say(String(format: "bf16 gemm 2048^3 (oneDNN, fp32 result): %.1f GFLOP/s (%d threads)", r.bf16_gemm_gflops!, Parallel.threads))
        }
        for preset in presets {
            for v in vocabSizes {
                for p in dropouts {
                    for precision in precision {
                        let t = try Benchmark.trainingStep(preset: preset, vocabSize: v, seqLen: seqLen, batch: batch, dropout: p,
                                                           precision: precision, steps: steps)
                        let config = try BertConfig(preset: preset, vocabSize: v)
                        let gf = Benchmark.trainingFlopsPerToken(config, seqLen: seqLen, maskedFraction: 0.15) * t.tokensPerSecond / 1e9
                        let ownPeak = precision == .bf16 ? r.bf16_gemm_gflops! : peak
                        r.train.append(Train(preset: preset, vocab: v, dropout: p, precision: precision.rawValue, tokens_per_s: t.tokensPerSecond,
                                             s_per_step: t.secondsPerStep, gflops: gf, fraction_of_sgemm: gf / peak, fraction_of_peak: gf / ownPeak))
                        say(String(format: "train %@ V%d dropout %.1f %@: %.0f tokens/s, %.3f s/step, %.1f GFLOP/s (%.0f%% of the %@ peak)",
                                   preset, v, p, precision.rawValue, t.tokensPerSecond, t.secondsPerStep, gf, 100 * gf / ownPeak,
                                   precision == .bf16 ? "bf16 gemm" : "sgemm"))
                    }
                }
                let inf = try Benchmark.inference(preset: preset, vocabSize: v, seqLen: seqLen, batch: batch)
                r.inference.append(Inference(preset: preset, vocab: v, tokens_per_s: inf))
                say(String(format: "inference %@ V%d: %.0f tokens/s", preset, v, inf))
            }
        }
        r.train_peak_rss_mb = Benchmark.peakRSSMegabytes()
        r.analytic_need_mb = try presets.flatMap { p in try vocabSizes.flatMap { v in try dropouts.map { d in
            Benchmark.analyticNeedBytes(try BertConfig(preset: p, vocabSize: v), batch: batch, seqLen: seqLen, dropout: d) / 1e6 } } }.max() ?? 0
        say(String(format: "training peak RSS: %.0f MB (analytic need %.0f MB, ratio %.2f)", r.train_peak_rss_mb, r.analytic_need_mb,
                   r.train_peak_rss_mb / max(r.analytic_need_mb, 1)))
        // tokenizer: the first 5 MB of Wikipedia with a vocabulary learned from it
        let shard = DataRoot.resolve(dataDir) + "/wiki_en/enwiki2015_wikiextractor_shard0.txt.gz"
        if FileManager.default.fileExists(atPath: shard) {
            var docs: [String] = [], bytes = 0
            try? Corpus.forEachDocument(shard) { d in if bytes < 5_000_000 { docs.append(d); bytes += d.utf8.count } }
            var counts = WordCounts()
            for d in docs { counts.add(d) }
            let tok = try WordPieceTokenizer(vocab: VocabTrainer.trainVocabulary(counts: counts, vocabSize: 8192))
            let t = Date()
            var n = 0
            for d in docs { n += tok.encode(d).count }
            r.tokenizer_mb_s = Double(bytes) / 1e6 / Date().timeIntervalSince(t)
            say(String(format: "tokenizer: %.1f MB/s (%d tokens from %.1f MB)", r.tokenizer_mb_s!, n, Double(bytes) / 1e6))
        }
        // checkpoints: the largest preset with optimizer moments
        let model = BertModel(config: try BertConfig(preset: presets.last!, vocabSize: vocabSizes.max()!))
        model.initialize(seed: 1)
        let moments = [("adam_m", Storage(count: model.params.totalCount)), ("adam_v", Storage(count: model.params.totalCount))]
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("droplab-bench-\(getpid()).h5").path
        defer { unlink(path) }
        let vocab = (0..<model.config.vocabSize).map { "t\($0)" }
        var t = Date()
        try Checkpoint.save(model, vocab: vocab, training: TrainingSnapshot(stateJSON: "{}", moments: moments), to: path)
        let mb = Double((try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0) / 1e6
        r.checkpoint_write_mb_s = mb / Date().timeIntervalSince(t)
        t = Date()
        _ = try Checkpoint.load(path, moments: ["adam_m", "adam_v"])
        r.checkpoint_read_mb_s = mb / Date().timeIntervalSince(t)
        say(String(format: "checkpoint %.0f MB: write %.0f MB/s, read %.0f MB/s", mb, r.checkpoint_write_mb_s!, r.checkpoint_read_mb_s!))
        r.peak_rss_mb = Benchmark.peakRSSMegabytes()
        say(String(format: "peak RSS: %.0f MB", r.peak_rss_mb))
        if json {
            let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
        }
    }
}
