import ArgumentParser
import Autograd
import Foundation
import Training

struct PretrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pretrain",
        abstract: "Pretrain a BERT masked LM, single epoch, on a streaming corpus.",
        discussion: "With no --corpus, uses the English Wikipedia shards in <data root>/wiki_en; the data root is --data-dir, $DROPLAB_DATA, ../shared/data or ./data.")

    @Option(help: "Hidden dropout probability (also attention dropout unless --attention-dropout).") var dropout: Float = 0.1
    @Option(help: "Attention-probability dropout.") var attentionDropout: Float?
    @Option(help: "Dropout only for the first N optimizer steps, then off.") var earlyDropoutSteps: Int?
    @Option(help: "Model size: tiny, mini, small, medium, base.") var preset = "mini"
    @Option(parsing: .upToNextOption, help: "Corpus files or directories (.txt or .gz).") var corpus: [String] = []
    @Option(help: "Dataset root for the default corpus.") var dataDir: String?
    @Option(help: "vocab.txt (default: learned from the corpus once and cached).") var vocab: String?
    @Option(help: "Size of the learned vocabulary.") var vocabSize = 8192
    @Option(help: "Token budget.") var tokens = 20_000_000
    @Option(help: "Sequences per micro-batch.") var batch = 32
    @Option(help: "Micro-batches per optimizer step (per rank under mpirun: a step takes ranks x this many).") var accumulation = 1
    @Option(help: "Sequence length.") var seqLen = 128
    @Option(help: "Start at this shorter sequence length (cut from the same text; 0: off).") var shortSeqLen = 0
    @Option(help: "Share of the steps at --short-seq-len.") var shortSeqFraction: Float = 0
    @Option(help: "Peak learning rate.") var lr: Float = 5e-4
    @Option(help: "Warmup: fraction of steps (< 1) or steps (>= 1).") var warmup: Float = 0.06
    @Option(help: "Decay after warmup: linear, cosine, constant.") var decay = LRSchedule.Decay.linear
    @Option(help: "AdamW weight decay.") var weightDecay: Float = 0.01
    @Option(help: "AdamW beta2.") var beta2: Float = 0.999
    @Option(help: "AdamW epsilon.") var adamEps: Float = 1e-6
    @Option(help: "Standard deviation of the initial weights.") var initRange: Float = 0.02
    @Flag(help: "Whole-word masking.") var wholeWordMasking = false
    @Option(help: "Seed for init, data order, masking and dropout (each overridable below).") var seed: UInt64 = 0
    @Option(help: "Seed of the initial weights (default: --seed).") var initSeed: UInt64?
    @Option(help: "Seed of the data order and masking (default: --seed).") var dataSeed: UInt64?
    @Option(help: "Seed of the dropout masks (default: --seed).") var dropoutSeed: UInt64?
    @Option(help: "Write step-NNNNNN.h5 every N steps (0: only last.h5 at the end).") var saveEvery = 0
    @Option(help: "Validation every N steps (0: only at the end).") var evalEvery = 0
    @Option(help: "Log a metrics line every N steps.") var logEvery = 10
    @Option(help: "Validation sequences.") var valSequences = 256
    @Option(help: "Validation sequence length (the same for every run, whatever --seq-len).") var valSeqLen = 128
    @Option(help: "Share of documents held out for validation (chosen by document hash).") var valFraction = 0.005
    @Option(help: "Run directory.") var out = "checkpoints/run"
    @Option(help: "Cache directory for vocabularies and token shards.") var cacheDir = "checkpoints/cache"
    @Option(help: "Also write init.h5 and the first N optimizer steps' batches (batches.h5) to --out, for tools/check_training_curve.py.") var exportBatches = 0
    @Option(help: "Matrix products: fp32 (CBLAS) or bf16 (oneDNN: bf16 inputs, fp32 results; needs AVX512-BF16). Weights, optimizer and checkpoints stay fp32.") var precision = Precision.fp32
    @Flag(help: "Continue the run in --out from last.h5 (under mpirun: on any number of ranks whose product with --accumulation is the run's).") var resume = false
    @Option(help: "Kernel threads (default: the cores, shared among the ranks mpirun starts on this machine).") var threads: Int?

    func run() throws {
        var o = PretrainOptions()
        o.corpus = corpus; o.dataDir = dataDir; o.vocab = vocab; o.vocabSize = vocabSize; o.preset = preset
        o.seqLen = seqLen; o.shortSeqLen = shortSeqLen; o.shortSeqFraction = shortSeqFraction; o.batch = batch; o.accumulation = accumulation; o.tokens = tokens; o.lr = lr
        o.warmup = warmup; o.weightDecay = weightDecay; o.beta2 = beta2; o.adamEps = adamEps; o.initRange = initRange; o.dropout = dropout; o.attentionDropout = attentionDropout
        o.earlyDropoutSteps = earlyDropoutSteps; o.wholeWordMasking = wholeWordMasking; o.seed = seed
        o.initSeed = initSeed; o.dataSeed = dataSeed; o.dropoutSeed = dropoutSeed
        o.saveEvery = saveEvery; o.evalEvery = evalEvery; o.logEvery = logEvery; o.valSequences = valSequences; o.valSeqLen = valSeqLen; o.valFraction = valFraction
        o.out = out; o.cacheDir = cacheDir; o.exportBatches = exportBatches; o.decay = decay
        o.precision = precision == .fp32 ? nil : precision
        try useThreads(threads)
        let world = MPIWorld.launched
        o.accumulation = accumulation * (world?.size ?? 1)
        let summary = try Pretrain.run(o, resume: resume, world: world, log: log)
        guard world?.rank ?? 0 == 0 else { return }
        print("pretrain: \(summary.steps) steps, \(summary.tokens) tokens, stopped: \(summary.reason.rawValue)")
        let curve = try MetricsLog.read(out + "/metrics.jsonl").filter { $0["val_loss"] != nil }
        if !curve.isEmpty {
            print("validation (seq \(valSeqLen), \(valSequences) sequences):   tokens  MLM loss  accuracy")
            for m in curve {
                print(String(format: "%48.2fM  %8.3f  %7.1f%%", (m["tokens"] ?? 0) / 1e6, m["val_loss"]!, 100 * (m["val_accuracy"] ?? .nan)))
            }
        }
    }
}

extension LRSchedule.Decay: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}
