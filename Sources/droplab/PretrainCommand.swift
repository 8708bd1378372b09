import ArgumentParser
import Autograd
import Foundation
import Training

struct PretrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pretrain",
        abstract: "Pretrain a BERT masked LM, single epoch, on a streaming corpus.",
        discussion: "With no --corpus, uses the English Wikipedia shards in <data root>/wiki_en; the data root is --data-dir, $DROPLAB_DATA, ../shared/data or ./data. The defaults of --lr, --beta2, --init-range and --short-seq-len/--short-seq-fraction are the pretraining sweep's best settings (reports/sweep.md); --short-seq-len 0 trains at --seq-len throughout.")
    /// The defaults (one place: PretrainOptions).
    private static let d = PretrainOptions()

    @Option(help: "Hidden dropout probability (also attention dropout unless --attention-dropout).") var dropout = Self.d.dropout
    @Option(help: "Attention-probability dropout.") var attentionDropout: Float?
    @Option(help: "Dropout only for the first N optimizer steps, then off.") var earlyDropoutSteps: Int?
    @Option(help: "Model size: tiny, mini, small, medium, base.") var preset = Self.d.preset
    @Option(parsing: .upToNextOption, help: "Corpus files or directories (.txt or .gz).") var corpus: [String] = []
    @Option(help: "Dataset root for the default corpus.") var dataDir: String?
    @Option(help: "vocab.txt (default: learned from the corpus once and cached).") var vocab: String?
    @Option(help: "Size of the learned vocabulary.") var vocabSize = Self.d.vocabSize
    @Option(help: "Token budget.") var tokens = Self.d.tokens
    @Option(help: "Sequences per micro-batch.") var batch = Self.d.batch
    @Option(help: "Micro-batches per optimizer step (per rank under mpirun: a step takes ranks x this many).") var accumulation = Self.d.accumulation
    @Option(help: "Sequence length.") var seqLen = Self.d.seqLen
    @Option(help: "Train the first --short-seq-fraction of the steps at this shorter length (cut from the same text; 0: off).") var shortSeqLen = Self.d.shortSeqLen
    @Option(help: "Share of the steps at --short-seq-len.") var shortSeqFraction = Self.d.shortSeqFraction
    @Option(help: "Peak learning rate.") var lr = Self.d.lr
    @Option(help: "Warmup: fraction of steps (< 1) or steps (>= 1).") var warmup = Self.d.warmup
    @Option(help: "Decay after warmup: linear, cosine, constant.") var decay = Self.d.decay
    @Option(help: "AdamW weight decay.") var weightDecay = Self.d.weightDecay
    @Option(help: "AdamW beta2.") var beta2 = Self.d.beta2
    @Option(help: "AdamW epsilon.") var adamEps = Self.d.adamEps
    @Option(help: "Standard deviation of the initial weights.") var initRange = Self.d.initRange
    @Flag(help: "Whole-word masking.") var wholeWordMasking = false
    @Option(help: "Share of tokens chosen for the training loss (80% [MASK], 10% random, 10% kept; validation stays at 0.15).") var maskRate = MaskingConfig().rate
    @Option(help: "JSONL lines {\"line\": ..., \"word\": ...} (corpus facts writes salient.jsonl): wherever a corpus line equals a \"line\", its word is chosen for the loss at --salient-mask-rate (salient-span masking; validation unchanged).") var salient: String?
    @Option(help: "Share of the --salient words chosen for the training loss (default: 1, all).") var salientMaskRate: Float?
    @Option(help: "Seed for init, data order, masking and dropout (each overridable below).") var seed = Self.d.seed
    @Option(help: "Seed of the initial weights (default: --seed).") var initSeed: UInt64?
    @Option(help: "Seed of the data order and masking (default: --seed).") var dataSeed: UInt64?
    @Option(help: "Seed of the dropout masks (default: --seed).") var dropoutSeed: UInt64?
    @Option(help: "Write step-NNNNNN.h5 every N steps (0: only last.h5 at the end).") var saveEvery = Self.d.saveEvery
    @Option(help: "Validation every N steps (0: only at the end).") var evalEvery = Self.d.evalEvery
    @Option(help: "Log a metrics line every N steps.") var logEvery = Self.d.logEvery
    @Option(help: "Validation sequences.") var valSequences = Self.d.valSequences
    @Option(help: "Validation sequence length (the same for every run, whatever --seq-len).") var valSeqLen = Self.d.valSeqLen
    @Option(help: "Share of documents held out for validation (chosen by document hash).") var valFraction = Self.d.valFraction
    @Option(help: "Run directory.") var out = Self.d.out
    @Option(help: "Cache directory for vocabularies and token shards.") var cacheDir = Self.d.cacheDir
    @Option(help: "Also write init.h5 and the first N optimizer steps' batches (batches.h5) to --out, for tools/check_training_curve.py.") var exportBatches = Self.d.exportBatches
    @Option(help: "Matrix products: fp32 (CBLAS) or bf16 (oneDNN: bf16 inputs, fp32 results; needs AVX512-BF16). Weights, optimizer and checkpoints stay fp32.") var precision = Precision.fp32
    @Flag(help: "Continue the run in --out from last.h5 (under mpirun: on any number of ranks whose product with --accumulation is the run's).") var resume = false
    @Option(help: "Kernel threads (default: the cores, shared among the ranks mpirun starts on this machine).") var threads: Int?

    func run() throws {
        var o = PretrainOptions()
        o.corpus = corpus; o.dataDir = dataDir; o.vocab = vocab; o.vocabSize = vocabSize; o.preset = preset
        o.seqLen = seqLen; o.shortSeqLen = shortSeqLen; o.shortSeqFraction = shortSeqFraction; o.batch = batch; o.accumulation = accumulation; o.tokens = tokens; o.lr = lr
        o.warmup = warmup; o.weightDecay = weightDecay; o.beta2 = beta2; o.adamEps = adamEps; o.initRange = initRange; o.dropout = dropout; o.attentionDropout = attentionDropout
        o.earlyDropoutSteps = earlyDropoutSteps; o.wholeWordMasking = wholeWordMasking; o.seed = seed
        o.maskRate = maskRate == MaskingConfig().rate ? nil : maskRate
        o.salient = salient; o.salientMaskRate = salientMaskRate
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
