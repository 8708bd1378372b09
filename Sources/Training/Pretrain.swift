// `droplab pretrain`: resolve corpus and vocabulary, build the model, stream MLM batches
// through the shared Trainer, evaluate held-out MLM loss, write the run directory.

import Autograd
import BERT
import Checkpoint
import Foundation
import Text

public struct PretrainOptions: CommandOptions, Equatable, Sendable {
    public var corpus: [String] = []          // empty: the default corpus under the data root
    public var dataDir: String? = nil
    public var vocab: String? = nil           // vocab.txt; default: learned from the corpus and cached
    public var vocabSize = 8192
    public var preset = "mini"
    public var seqLen = 128
    public var shortSeqLen = 16               // > 0: the first --short-seq-fraction of the steps at this length; 0: off
    public var shortSeqFraction: Float = 0.5
    public var batch = 32
    public var accumulation = 1
    public var tokens = 20_000_000            // token budget
    public var lr: Float = 2e-3
    public var warmup: Float = 0.06           // fraction of steps (< 1) or a step count (>= 1)
    public var decay: LRSchedule.Decay = .linear
    public var weightDecay: Float = 0.01
    public var beta2: Float = 0.98            // AdamW second-moment decay
    public var adamEps: Float = 1e-6
    public var initRange: Float = 0.05        // std of the normal initialisation (HF initializer_range)
    public var dropout: Float = 0.1
    public var attentionDropout: Float? = nil // default: same as dropout
    public var earlyDropoutSteps: Int? = nil
    public var wholeWordMasking = false
    public var maskRate: Float? = nil         // share of tokens chosen for the training loss; nil: BERT's 0.15 (validation always 0.15)
    public var salient: String? = nil         // JSONL {"line", "word"} (SalientLines): words chosen at --salient-mask-rate
    public var salientMaskRate: Float? = nil  // nil: 1 with --salient (every marked piece chosen)
    public var seed: UInt64 = 0
    public var initSeed: UInt64? = nil        // initial weights (default: seed)
    public var dataSeed: UInt64? = nil        // data order and masking (default: seed)
    public var dropoutSeed: UInt64? = nil     // dropout masks (default: seed)
    public var saveEvery = 0
    public var evalEvery = 0
    public var logEvery = 10
    public var valSequences = 256
    public var valSeqLen = 128                // validation sequence length, whatever the training length
    public var valFraction = 0.005            // share of documents held out (by document hash)
    public var out = "checkpoints/run"
    public var cacheDir = "checkpoints/cache"
    public var exportBatches = 0              // also write init.h5 and the first N steps' batches (tools/check_training_curve.py)
    public var precision: Precision? = nil    // of the matrix products; nil: fp32 (absent from fp32 runs' config.json and job identity)
    public init() {}

    /// Every field's range, before anything is read or written; errors name the flag.
    public func validate() throws {
        try Check.that(BertConfig.presets.contains { $0.name == preset }, "preset",
                       "'\(preset)' is unknown (known: \(BertConfig.presets.map(\.name).joined(separator: ", ")))")
        try Check.range(seqLen, 8...Pretrain.maxPositions, "seq-len")
        try Check.range(batch, 1...Check.maxBatch, "batch")
        if shortSeqLen != 0 {
            try Check.that(shortSeqLen >= 8 && shortSeqLen <= seqLen / 2 + 1, "short-seq-len",
                           "must be in 8...\(seqLen / 2 + 1) (at most half of --seq-len \(seqLen), plus 1), got \(shortSeqLen); 0 trains at --seq-len throughout")
            try Check.that(shortSeqFraction > 0 && shortSeqFraction < 1, "short-seq-fraction", "must be in (0, 1) with --short-seq-len, got \(shortSeqFraction)")
        }
        try Check.range(accumulation, 1...1024, "accumulation")
        try Check.range(tokens, 1...(1 << 50), "tokens")
        try Check.that(tokens >= batch * seqLen * accumulation, "tokens",
                       "\(tokens) is less than one step (--batch x --seq-len x --accumulation = \(batch * seqLen * accumulation))")
        try Check.that(lr > 0 && lr.isFinite, "lr", "must be positive, got \(lr)")
        try Check.number(warmup, 0...Float(Check.maxSteps), "warmup")
        try Check.number(weightDecay, 0...1, "weight-decay")
        try Check.that(beta2 > 0 && beta2 < 1, "beta2", "must be in (0, 1), got \(beta2)")
        try Check.that(adamEps > 0 && adamEps <= 1, "adam-eps", "must be in (0, 1], got \(adamEps)")
        try Check.that(initRange > 0 && initRange <= 1, "init-range", "must be in (0, 1], got \(initRange)")
        try Check.probability(dropout, "dropout")
        if let a = attentionDropout { try Check.probability(a, "attention-dropout") }
        if let r = maskRate { try Check.that(r > 0 && r < 1, "mask-rate", "must be in (0, 1), got \(r)") }
        if let r = salientMaskRate {
            try Check.that(salient != nil, "salient-mask-rate", "needs --salient (the lines whose words it applies to)")
            try Check.that(r > 0 && r <= 1, "salient-mask-rate", "must be in (0, 1], got \(r)")
        }
        if let s = salient { try Check.nonEmpty(s, "salient") }
        try Check.optionalRange(earlyDropoutSteps, 0...Check.maxSteps, "early-dropout-steps")
        try Check.range(vocabSize, 64...(1 << 20), "vocab-size")
        try Check.range(saveEvery, 0...Check.maxSteps, "save-every")
        try Check.range(evalEvery, 0...Check.maxSteps, "eval-every")
        try Check.range(logEvery, 1...Check.maxSteps, "log-every")
        try Check.range(valSequences, 1...(1 << 20), "val-sequences")
        try Check.range(valSeqLen, 8...Pretrain.maxPositions, "val-seq-len")
        try Check.that(valFraction > 0 && valFraction < 1, "val-fraction", "must be in (0, 1), got \(valFraction)")
        try Check.nonEmpty(out, "out")
        try Check.nonEmpty(cacheDir, "cache-dir")
        try Check.range(exportBatches, 0...Check.maxSteps, "export-batches")
    }

    /// The seeds in force: each of --init-seed, --data-seed and --dropout-seed, else --seed.
    public var seeds: (initialization: UInt64, data: UInt64, dropout: UInt64) {
        (initSeed ?? seed, dataSeed ?? seed, dropoutSeed ?? seed)
    }
}

public enum Pretrain {
    public static let defaultCorpus = "wiki_en"
    public static let maxPositions = 512

    /// Corpus files: --corpus paths, else <data root>/wiki_en.
    public static func corpusFiles(_ o: PretrainOptions) throws -> [String] {
        if !o.corpus.isEmpty { return try Corpus.files(o.corpus) }
        let dir = DataRoot.resolve(o.dataDir) + "/" + defaultCorpus
        guard FileManager.default.fileExists(atPath: dir) else {
            throw CorpusError("no --corpus given and the default corpus \(dir) does not exist (set --data-dir or DROPLAB_DATA)")
        }
        return try Corpus.files([dir])
    }

    /// The tokenizer: --vocab, else a vocabulary learned from the first corpus file, cached (keyed
    /// by its path, size and modification time, as the token shards).
    public static func tokenizer(_ o: PretrainOptions, files: [String], log: @escaping (String) -> Void) throws -> WordPieceTokenizer {
        if let v = o.vocab { return try WordPieceTokenizer(vocabFile: v) }
        var h = StableHash()
        let attrs = try? FileManager.default.attributesOfItem(atPath: files[0])
        h.add("vocab-v1"); h.add(String(o.vocabSize)); h.add((files[0] as NSString).standardizingPath)
        h.add(String(attrs?[.size] as? Int ?? 0)); h.add(String((attrs?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0))
        let path = o.cacheDir + "/vocab-\(h.hex).txt"
        if !FileManager.default.fileExists(atPath: path) {
            log("learning a \(o.vocabSize)-token WordPiece vocabulary from \(files[0]) (once; cached at \(path))")
            let start = Date()
            var counts = WordCounts()
            try Corpus.forEachDocument(files[0]) { counts.add($0) }
            let vocab = VocabTrainer.trainVocabulary(counts: counts, vocabSize: o.vocabSize, log: log)
            try FileManager.default.createDirectory(atPath: o.cacheDir, withIntermediateDirectories: true)
            try (vocab.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            log(String(format: "vocabulary of %d tokens learned in %.1fs", vocab.count, Date().timeIntervalSince(start)))
        }
        return try WordPieceTokenizer(vocabFile: path)
    }

    public static func masker(_ tok: WordPieceTokenizer, wholeWord: Bool, rate: Float = MaskingConfig().rate,
                              salientRate: Float = MaskingConfig().salientRate) -> Masker {
        Masker(config: MaskingConfig(rate: rate, salientRate: salientRate), maskId: tok.maskId, vocabSize: tok.vocab.count,
               special: [tok.padId, tok.unkId, tok.clsId, tok.sepId, tok.maskId],
               continuation: wholeWord ? tok.vocab.map { $0.hasPrefix("##") } : nil)
    }

    /// `world`: data parallel over the ranks of an mpirun job; `o.accumulation` counts the
    /// micro-batches of a step over all ranks (a multiple of the rank count).
    public static func run(_ o: PretrainOptions, resume: Bool, world: MPIWorld? = nil, log: @escaping (String) -> Void) throws -> TrainingSummary {
        try o.validate()
        try Check.machineRuns(o.precision)
        let salient = try o.salient.map { try SalientLines.read($0, flag: "salient") }
        let ranks = world?.size ?? 1, leader = (world?.rank ?? 0) == 0
        precondition(o.accumulation % ranks == 0, "the micro-batches of a step must divide over the ranks")
        let log = leader ? log : { _ in }
        let fm = FileManager.default
        if resume {
            guard fm.fileExists(atPath: o.out + "/last.h5") else { throw TrainerError("--resume: \(o.out)/last.h5 does not exist") }
            try checkSameSettings(o, as: o.out + "/config.json", ranks: ranks)
        } else if let f = runFiles(in: o.out).first {
            throw TrainerError("\(o.out) already holds a run (\(f)): use --resume to continue it, or another --out")
        }
        if let world, !leader { try world.barrier() }   // rank 0 fills the vocabulary and token caches first
        try AtomicFile.checkWritableDirectory(o.out, flag: "--out")
        try AtomicFile.checkWritableDirectory(o.cacheDir, flag: "--cache-dir")
        let files = try corpusFiles(o)
        let tok = try tokenizer(o, files: files, log: log)
        let model = try initialModel(o, vocabSize: tok.vocab.count)
        let config = model.config
        let cache = TokenShardCache(root: o.cacheDir, files: files, vocab: tok.vocab, valFraction: o.valFraction, salient: salient)
        let valFile = try cache.shard(0, tokenizer: tok, log: log).val
        let valPacker = SequencePacker(seqLen: o.valSeqLen, cls: tok.clsId, sep: tok.sepId)
        let valBatches = MLMEvaluation.batches(from: valFile, packer: valPacker, masker: pretrainMasker(tok),
                                               sequences: o.valSequences, batchSize: o.batch, seed: 12345)
        guard !valBatches.isEmpty else {
            throw CorpusError("\(files[0]): its held-out documents (\(o.valFraction * 100)% by hash) give no validation sequence of \(o.valSeqLen) tokens; use more text or a larger --val-fraction")
        }

        // the schedule spans the steps the corpus really gives when it is shorter than the budget
        let perStep = o.batch * o.accumulation, budget = o.tokens / (perStep * o.seqLen)
        let packer = SequencePacker(seqLen: o.seqLen, cls: tok.clsId, sep: tok.sepId)
        let sequences = try countSequences(cache, tok, packer: packer, upTo: budget * perStep, log: log)
        let steps = min(budget, sequences / perStep)
        guard steps > 0 else {
            throw CorpusError("the corpus gives \(sequences) training sequences of --seq-len \(o.seqLen), less than one step of \(perStep) (--batch x --accumulation)")
        }
        if let world, leader { try world.barrier() }
        if steps < budget {
            log("the corpus gives \(sequences) training sequences: \(steps) steps (\(steps * perStep * o.seqLen) tokens) instead of the \(budget) of --tokens \(o.tokens)")
        }
        let shortSteps = o.shortSeqLen > 0 ? Int((o.shortSeqFraction * Float(steps)).rounded()) : 0
        if shortSteps > 0 {
            log("the first \(shortSteps) steps at sequence length \(o.shortSeqLen) (\(o.batch * packer.pieces(length: o.shortSeqLen)) sequences per micro-batch)")
        }
        let data = trainingData(o, cache: cache, tokenizer: tok, short: shortSteps > 0 ? (o.shortSeqLen, shortSteps * o.accumulation) : nil,
                                log: log)
        let warmup = o.warmup < 1 ? Int((o.warmup * Float(steps)).rounded()) : Int(o.warmup)
        var topt = TrainerOptions(steps: steps, schedule: LRSchedule(peak: o.lr, warmupSteps: warmup, totalSteps: steps, decay: o.decay),
                                  hiddenDropout: config.hiddenDropout, attentionDropout: config.attentionDropout, seed: o.seeds.dropout)
        topt.accumulation = o.accumulation
        topt.adamw.weightDecay = o.weightDecay
        topt.adamw.beta2 = o.beta2
        topt.adamw.eps = o.adamEps
        topt.earlyDropoutSteps = o.earlyDropoutSteps
        topt.saveEvery = o.saveEvery; topt.evalEvery = o.evalEvery; topt.logEvery = o.logEvery
        topt.precision = o.precision

        try fm.createDirectory(atPath: o.out, withIntermediateDirectories: true)
        AtomicFile.removeStale(in: o.out)
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        if !resume && leader { try AtomicFile.write(try enc.encode(o), to: o.out + "/config.json") }
        log("pretraining \(o.preset) (\(model.params.totalCount) parameters, vocab \(tok.vocab.count)) on \(files.count) file(s): "
            + "\(steps) steps of \(o.batch)x\(o.seqLen) tokens, dropout \(config.hiddenDropout)/\(config.attentionDropout), out \(o.out)"
            + (ranks > 1 ? ", data parallel over \(ranks) ranks (\(o.accumulation / ranks) micro-batches each per step)" : ""))
        log("machine: \(Machine.cpu.model) (\(Machine.cpu.isaSummary)), \(Parallel.threads) kernel threads, OpenBLAS \(Machine.openBLASDescription), "
            + "oneDNN \(Machine.oneDNNISA), precision \((o.precision ?? .fp32).rawValue)")
        let trainer = Trainer(model: model, vocab: tok.vocab, data: data, options: topt, runDir: o.out,
                              loss: mlmLoss,
                              evaluate: { model in
                                  let m = MLMEvaluation.evaluate(model, valBatches)
                                  return ["val_loss": m.loss, "val_accuracy": m.accuracy]
                              })
        trainer.log = log
        trainer.world = ranks > 1 ? world : nil
        if resume { try trainer.resume() } else if o.exportBatches > 0 && leader {
            try exportBatches(model: model, vocab: tok.vocab, data: data, steps: min(o.exportBatches, steps), accumulation: o.accumulation, dir: o.out)
        }
        var summary = try trainer.run()
        if summary.reason == .budget && steps < budget { summary.reason = .endOfData }
        return summary
    }

    /// The model before its first step: the preset with the run's dropout, weights drawn from the init seed.
    static func initialModel(_ o: PretrainOptions, vocabSize: Int) throws -> BertModel {
        var config = try BertConfig(preset: o.preset, vocabSize: vocabSize, maxPositions: maxPositions)
        config.hiddenDropout = o.dropout
        config.attentionDropout = o.attentionDropout ?? o.dropout
        config.initializerRange = o.initRange
        let model = BertModel(config: config)
        model.initialize(seed: o.seeds.initialization)
        return model
    }

    /// The training stream: sequence order and masking drawn from the data seed.
    static func trainingData(_ o: PretrainOptions, cache: TokenShardCache, tokenizer tok: WordPieceTokenizer,
                             short: (seqLen: Int, batches: Int)? = nil, log: @escaping (String) -> Void) -> PretrainData {
        PretrainData(cache: cache, tokenizer: tok, seqLen: o.seqLen, batchSize: o.batch, seed: o.seeds.data,
                     masker: masker(tok, wholeWord: o.wholeWordMasking, rate: o.maskRate ?? MaskingConfig().rate,
                                    salientRate: o.salientMaskRate ?? MaskingConfig().salientRate), short: short, log: log)
    }

    /// The initial weights (`init.h5`) and the micro-batches of the first `steps` optimizer steps
    /// (`batches.h5`: `ids-NNNNNN` and `labels-NNNNNN`, [batch, seq], micro-batches numbered from 0),
    /// drawn from a copy of the data stream, so that another implementation can replay the training.
    static func exportBatches(model: BertModel, vocab: [String], data: PretrainData, steps: Int, accumulation: Int, dir: String) throws {
        try Checkpoint.save(model, vocab: vocab, to: dir + "/init.h5")
        let path = dir + "/batches.h5", tmp = AtomicFile.temporaryPath(for: path)
        do {
            let f = try HDF5File.create(tmp)
            var stream = data
            for i in 0..<(steps * accumulation) {
                guard let ex = try stream.next() else { break }
                let shape = [ex.batch.batchSize, ex.batch.seqLen], name = String(format: "%06d", i)
                try f.write("ids-" + name, int64s: ex.batch.ids.map(Int64.init), shape: shape)
                try f.write("labels-" + name, int64s: ex.labels.map(Int64.init), shape: shape)
            }
            try f.finish()
        } catch {
            unlink(tmp)
            throw error
        }
        try AtomicFile.commit(tmp, to: path)
    }

    /// The pretraining loss of one batch.
    public static func mlmLoss(_ tape: Tape, _ model: BertModel, _ ex: MLMExample, _ plan: DropoutPlan) -> Tensor {
        model.mlmLoss(tape, ex.batch, labels: ex.labels, dropout: plan)
    }

    /// The files a run writes in its directory (a fresh run refuses a directory holding any).
    static func runFiles(in dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { f in
            ["config.json", "metrics.jsonl", "last.h5"].contains(f) || (f.hasPrefix("step-") && f.hasSuffix(".h5"))
        }.sorted()
    }

    /// Training sequences of the corpus files in order, counted until `limit` is reached
    /// (each file is tokenized once into the cache, as training would).
    static func countSequences(_ cache: TokenShardCache, _ tok: WordPieceTokenizer, packer: SequencePacker, upTo limit: Int,
                               log: (String) -> Void) throws -> Int {
        var n = 0
        for i in cache.files.indices where n < limit { n += packer.count(try cache.shard(i, tokenizer: tok, log: log).train) }
        return n
    }

    /// A resumed run must use the settings it was started with; the error lists the differences.
    /// Under mpirun only the product ranks x --accumulation must match.
    static func checkSameSettings(_ o: PretrainOptions, as path: String, ranks: Int = 1) throws {
        guard let data = FileManager.default.contents(atPath: path),
              let old = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TrainerError("--resume: cannot read \(path)")
        }
        if ranks > 1, let a = old["accumulation"] as? Int, a != o.accumulation {
            throw TrainerError("--resume: the run takes \(a) micro-batches per step, \(ranks) ranks x --accumulation \(o.accumulation / ranks) take \(o.accumulation) "
                               + "(ranks x --accumulation must equal \(a))")
        }
        try Precision.checkResume((old["precision"] as? String).flatMap(Precision.init), o.precision, run: path)
        let diffs = Settings.differences(old: old, new: try Settings.object(o))
        if !diffs.isEmpty {
            throw TrainerError("--resume with different settings than \(path): " + diffs.joined(separator: ", "))
        }
    }

    /// The masking used for evaluation: standard BERT masking, independent of training flags.
    public static func pretrainMasker(_ tok: WordPieceTokenizer) -> Masker { masker(tok, wholeWord: false) }
}
