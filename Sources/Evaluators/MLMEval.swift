// `droplab eval mlm`: held-out masked-LM loss, perplexity and accuracy of a checkpoint on the
// validation split of a corpus, with a fixed masking seed (the same split and masks as the
// validation during pretraining when corpus, sequence length and seed agree).

import BERT
import Checkpoint
import Foundation
import Text
import Training

public struct MLMEvalOptions: CommandOptions, Sendable {
    public var corpus: [String] = []
    public var dataDir: String? = nil
    public var seqLen = 128
    public var sequences = 1024
    public var batch = 32
    public var maskSeed: UInt64 = 12345
    public var valFraction = 0.005
    public var cacheDir = "checkpoints/cache"     // recipes leave it "" (the runner's cache)
    public init() {}

    public func validate() throws {
        try Check.range(seqLen, 8...Pretrain.maxPositions, "seq-len")
        try Check.range(sequences, 1...(1 << 20), "sequences")
        try Check.range(batch, 1...Check.maxBatch, "batch")
        try Check.that(valFraction > 0 && valFraction < 1, "val-fraction", "must be in (0, 1), got \(valFraction)")
    }
}

extension MLMEvalOptions: OptionHelp {
    public static let help: [String: String] = [
        "corpus": "Corpus files or directories (empty: <data root>/wiki_en).",
        "dataDir": "Dataset root.",
        "seqLen": "Sequence length.",
        "sequences": "Validation sequences to score.",
        "batch": "Sequences per forward pass.",
        "maskSeed": "Masking seed.",
        "valFraction": "Share of documents held out (must match pretraining's --val-fraction).",
        "cacheDir": "Cache directory for token shards (in recipes: the runner's cache).",
    ]
}

public struct MLMEvalResult: Codable, Sendable {
    public var checkpoint: String
    public var corpus: [String]
    public var options: MLMEvalOptions
    public var metrics: MLMMetrics
    public var seconds: Double
}

public enum MLMEval {
    public static func run(checkpoint: String, options o: MLMEvalOptions, log: (String) -> Void) throws -> MLMEvalResult {
        try o.validate()
        let start = Date()
        let ck = try Checkpoint.load(checkpoint)
        guard ck.model.head == .mlm else { throw CheckpointError(checkpoint, "has a \(ck.model.head.rawValue) head, not an MLM head") }
        guard o.seqLen <= ck.model.config.maxPositions else {
            throw OptionError(key: "seq-len", "\(o.seqLen) exceeds the max positions \(ck.model.config.maxPositions) of \(checkpoint)")
        }
        var po = PretrainOptions()
        po.corpus = o.corpus; po.dataDir = o.dataDir
        let files = try Pretrain.corpusFiles(po)
        let tok = try WordPieceTokenizer(vocab: ck.vocab)
        let cache = TokenShardCache(root: o.cacheDir, files: files, vocab: tok.vocab, valFraction: o.valFraction)
        let val = try cache.shard(0, tokenizer: tok, log: log).val
        let batches = MLMEvaluation.batches(from: val, packer: SequencePacker(seqLen: o.seqLen, cls: tok.clsId, sep: tok.sepId),
                                            masker: Pretrain.pretrainMasker(tok), sequences: o.sequences, batchSize: o.batch,
                                            seed: o.maskSeed)
        guard !batches.isEmpty else { throw CorpusError("\(files[0]): no held-out sequences of length \(o.seqLen)") }
        let metrics = MLMEvaluation.evaluate(ck.model, batches)
        return MLMEvalResult(checkpoint: checkpoint, corpus: files, options: o, metrics: metrics,
                             seconds: Date().timeIntervalSince(start))
    }
}
