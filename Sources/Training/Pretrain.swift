// `droplab pretrain`: resolve corpus and vocabulary, build the model, stream MLM batches
// through the shared Trainer, evaluate held-out MLM loss, write the run directory.

import Autograd
import BERT
import Checkpoint
import Foundation
import Text

public struct PretrainOptions: Codable, Equatable, Sendable {
    public var corpus: [String] = []          // empty: the default corpus under the data root
    public var dataDir: String? = nil
    public var vocab: String? = nil           // vocab.txt; default: learned from the corpus and cached
    public var vocabSize = 8192
    public var preset = "mini"
    public var seqLen = 128
    public var batch = 32
    public var accumulation = 1
    public var tokens = 20_000_000            // token budget
    public var lr: Float = 5e-4
    public var warmup: Float = 0.06           // fraction of steps (< 1) or a step count (>= 1)
    public var decay: LRSchedule.Decay = .linear
    public var weightDecay: Float = 0.01
    public var dropout: Float = 0.1
    public var attentionDropout: Float? = nil // default: same as dropout
    public var earlyDropoutSteps: Int? = nil
    public var wholeWordMasking = false
    public var seed: UInt64 = 0
    public var saveEvery = 0
    public var evalEvery = 0
    public var logEvery = 10
    public var valSequences = 256
    public var valFraction = 0.005            // share of documents held out (by document hash)
    public var out = "checkpoints/run"
    public var cacheDir = "checkpoints/cache"
    public init() {}
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

    /// The tokenizer: --vocab, else a vocabulary learned from the first corpus file, cached.
    public static func tokenizer(_ o: PretrainOptions, files: [String], log: @escaping (String) -> Void) throws -> WordPieceTokenizer {
        if let v = o.vocab { return try WordPieceTokenizer(vocabFile: v) }
        var h = StableHash()
        h.add("vocab-v1"); h.add(String(o.vocabSize)); h.add((files[0] as NSString).standardizingPath)
        h.add(String((try? FileManager.default.attributesOfItem(atPath: files[0])[.size] as? Int) ?? 0))
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

    public static func masker(_ tok: WordPieceTokenizer, wholeWord: Bool) -> Masker {
        Masker(maskId: tok.maskId, vocabSize: tok.vocab.count,
               special: [tok.padId, tok.unkId, tok.clsId, tok.sepId, tok.maskId],
               continuation: wholeWord ? tok.vocab.map { $0.hasPrefix("##") } : nil)
    }

    /// Validate flags before anything is written; errors name the flag.
    public static func validate(_ o: PretrainOptions) throws {
        func check(_ ok: Bool, _ msg: String) throws { if !ok { throw TrainerError(msg) } }
        try check(o.seqLen >= 8 && o.seqLen <= maxPositions, "--seq-len must be in 8...\(maxPositions), got \(o.seqLen)")
        try check(o.valFraction > 0 && o.valFraction < 1, "--val-fraction must be in (0, 1), got \(o.valFraction)")
        try check(o.batch >= 1, "--batch must be at least 1, got \(o.batch)")
        try check(o.accumulation >= 1, "--accumulation must be at least 1, got \(o.accumulation)")
        try check(o.tokens >= o.batch * o.seqLen * o.accumulation, "--tokens \(o.tokens) is less than one step (\(o.batch * o.seqLen * o.accumulation))")
        try check(o.lr > 0 && o.lr.isFinite, "--lr must be positive, got \(o.lr)")
        try check(o.dropout >= 0 && o.dropout < 1, "--dropout must be in [0, 1), got \(o.dropout)")
        try check((o.attentionDropout ?? 0) >= 0 && (o.attentionDropout ?? 0) < 1, "--attention-dropout must be in [0, 1)")
        try check(o.vocabSize >= 64, "--vocab-size must be at least 64, got \(o.vocabSize)")
        try check(o.valSequences >= 1, "--val-sequences must be at least 1")
        try check(o.warmup >= 0, "--warmup must be >= 0")
        _ = try BertConfig(preset: o.preset, vocabSize: 100)   // unknown preset -> error naming it
    }

    public static func run(_ o: PretrainOptions, resume: Bool, log: @escaping (String) -> Void) throws -> TrainingSummary {
        try validate(o)
        let fm = FileManager.default
        if !resume && fm.fileExists(atPath: o.out + "/last.h5") {
            throw TrainerError("\(o.out)/last.h5 exists: pass --resume to continue that run, or choose another --out")
        }
        if resume && !fm.fileExists(atPath: o.out + "/last.h5") {
            throw TrainerError("--resume: \(o.out)/last.h5 does not exist")
        }
        if resume { try checkSameSettings(o, as: o.out + "/config.json") }
        let files = try corpusFiles(o)
        let tok = try tokenizer(o, files: files, log: log)
        var config = try BertConfig(preset: o.preset, vocabSize: tok.vocab.count, maxPositions: maxPositions)
        config.hiddenDropout = o.dropout
        config.attentionDropout = o.attentionDropout ?? o.dropout
        let model = BertModel(config: config)
        model.initialize(seed: o.seed)

        let cache = TokenShardCache(root: o.cacheDir, files: files, vocab: tok.vocab, valFraction: o.valFraction)
        let masker = masker(tok, wholeWord: o.wholeWordMasking)
        let data = PretrainData(cache: cache, tokenizer: tok, seqLen: o.seqLen, batchSize: o.batch, seed: o.seed,
                                masker: masker, log: log)
        let valFile = try cache.shard(0, tokenizer: tok, log: log).val
        let packer = SequencePacker(seqLen: o.seqLen, cls: tok.clsId, sep: tok.sepId)
        let valBatches = MLMEvaluation.batches(from: valFile, packer: packer, masker: pretrainMasker(tok),
                                               sequences: o.valSequences, batchSize: o.batch, seed: 12345)
        guard !valBatches.isEmpty else {
            throw CorpusError("\(files[0]): its held-out documents (\(o.valFraction * 100)% by hash) give no validation sequence of \(o.seqLen) tokens; use more text or a larger --val-fraction")
        }

        let steps = o.tokens / (o.batch * o.seqLen * o.accumulation)
        let warmup = o.warmup < 1 ? Int((o.warmup * Float(steps)).rounded()) : Int(o.warmup)
        var topt = TrainerOptions(steps: steps, schedule: LRSchedule(peak: o.lr, warmupSteps: warmup, totalSteps: steps, decay: o.decay),
                                  hiddenDropout: config.hiddenDropout, attentionDropout: config.attentionDropout, seed: o.seed)
        topt.accumulation = o.accumulation
        topt.adamw.weightDecay = o.weightDecay
        topt.earlyDropoutSteps = o.earlyDropoutSteps
        topt.saveEvery = o.saveEvery; topt.evalEvery = o.evalEvery; topt.logEvery = o.logEvery

        try fm.createDirectory(atPath: o.out, withIntermediateDirectories: true)
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        if !resume { try enc.encode(o).write(to: URL(fileURLWithPath: o.out + "/config.json")) }
        log("pretraining \(o.preset) (\(model.params.totalCount) parameters, vocab \(tok.vocab.count)) on \(files.count) file(s): "
            + "\(steps) steps of \(o.batch)x\(o.seqLen) tokens, dropout \(config.hiddenDropout)/\(config.attentionDropout), out \(o.out)")
        let trainer = Trainer(model: model, vocab: tok.vocab, data: data, options: topt, runDir: o.out,
                              loss: { tape, model, ex, plan in model.mlmLoss(tape, ex.batch, labels: ex.labels, dropout: plan) },
                              evaluate: { model in
                                  let m = MLMEvaluation.evaluate(model, valBatches)
                                  return ["val_loss": m.loss, "val_accuracy": m.accuracy]
                              })
        trainer.log = log
        if resume { try trainer.resume() }
        return try trainer.run()
    }

    /// A resumed run must use the settings it was started with; the error lists the differences.
    static func checkSameSettings(_ o: PretrainOptions, as path: String) throws {
        guard let data = FileManager.default.contents(atPath: path),
              let old = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TrainerError("--resume: cannot read \(path)")
        }
        let new = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(o)) as! [String: Any]
        let keys = Set(old.keys).union(new.keys).sorted()
        let diffs = keys.filter { k in
            "\(old[k].map { "\($0)" } ?? "-")" != "\(new[k].map { "\($0)" } ?? "-")"
        }.map { k in "\(k) \(old[k].map { "\($0)" } ?? "unset") -> \(new[k].map { "\($0)" } ?? "unset")" }
        if !diffs.isEmpty {
            throw TrainerError("--resume with different settings than \(path): " + diffs.joined(separator: ", "))
        }
    }

    /// The masking used for evaluation: standard BERT masking, independent of training flags.
    public static func pretrainMasker(_ tok: WordPieceTokenizer) -> Masker { masker(tok, wholeWord: false) }
}
