import ArgumentParser
import BERT
import Foundation
import Training

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Measure throughput on this machine.")
    @Option(parsing: .upToNextOption, help: "Presets to time.") var presets: [String] = ["mini", "small"]
    @Option(parsing: .upToNextOption, help: "Vocabulary sizes.") var vocabSizes: [Int] = [8192, 30522]
    @Option(parsing: .upToNextOption, help: "Dropout settings.") var dropouts: [Float] = [0.0, 0.1]
    @Option(help: "Timed steps per configuration.") var steps = 5
    @Option(help: "Batch size.") var batch = 32
    @Option(help: "Sequence length.") var seqLen = 128

    func run() throws {
        let peak = Benchmark.sgemm()
        print(String(format: "sgemm 2048^3: %.1f GFLOP/s", peak))
        for preset in presets {
            for v in vocabSizes {
                for p in dropouts {
                    let r = try Benchmark.trainingStep(preset: preset, vocabSize: v, seqLen: seqLen, batch: batch, dropout: p, steps: steps)
                    let config = try BertConfig(preset: preset, vocabSize: v)
                    let flops = Benchmark.trainingFlopsPerToken(config, seqLen: seqLen, maskedFraction: 0.15) * r.tokensPerSecond / 1e9
                    print(String(format: "train %@ V%d dropout %.1f: %.0f tokens/s, %.3f s/step, %.1f GFLOP/s (%.0f%% of sgemm)",
                                 preset, v, p, r.tokensPerSecond, r.secondsPerStep, flops, 100 * flops / peak))
                }
            }
        }
    }
}
