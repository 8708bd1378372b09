// SQuAD features as in the original BERT recipe (google-research/bert run_squad.py):
//   * the question is truncated to its first `maxQueryLen` WordPiece tokens;
//   * the context is tokenized once (with unicode-scalar offsets into the original text) and
//     covered by windows of at most maxSeqLen - len(question) - 3 tokens whose starts are
//     `docStride` tokens apart (the last window ends at the end of the context);
//   * each window is [CLS] question [SEP] window [SEP]: token type 0 up to the first [SEP],
//     1 for the window and the final [SEP]; batches are padded (attention mask 0) to their
//     longest feature;
//   * a token seen by several windows is scored only in the window where it has the most
//     context (min(left, right) + 0.01 * window length), as the original post-processing;
//   * training target: the first answer's first and last token when both are inside the
//     window, else [CLS] (position 0); unanswerable questions target [CLS].
// Answer characters map to tokens by overlap: the first token ending after the answer start
// and the last token starting before the answer end. Token positions map back to text as
// context[start of first token ..< end of last token] in the ORIGINAL context.

import Autograd
import BERT
import Checkpoint
import Datasets
import Foundation
import Text
import Training

public struct SquadFeatureOptions: Codable, Sendable, Equatable {
    public var maxSeqLen = 384
    public var docStride = 128
    public var maxQueryLen = 64
    public init() {}

    /// Errors name the flag.
    public func validate() throws {
        try Check.range(maxSeqLen, 8...Pretrain.maxPositions, "max-seq-len")
        try Check.range(maxQueryLen, 1...Pretrain.maxPositions, "max-query-len")
        try Check.range(docStride, 1...Pretrain.maxPositions, "doc-stride")
        try Check.that(maxSeqLen - maxQueryLen - 3 >= docStride, "max-seq-len", "\(maxSeqLen) is too small: a window must hold the question (up to --max-query-len \(maxQueryLen) tokens), 3 special tokens and at least --doc-stride \(docStride) context tokens (needs >= \(maxQueryLen + 3 + docStride))")
    }

    /// What the checkpoint's model must support: the window length and token type 1.
    public func check(checkpoint: String, _ config: BertConfig) throws {
        guard maxSeqLen <= config.maxPositions else {
            throw OptionError(key: "max-seq-len", "\(maxSeqLen) exceeds the max positions \(config.maxPositions) of \(checkpoint)")
        }
        guard config.typeVocabSize >= 2 else {
            throw CheckpointError(checkpoint, "type_vocab_size is \(config.typeVocabSize), but SQuAD windows use token type 1 for the context (needs >= 2)")
        }
    }
}

extension SquadFeatureOptions: OptionHelp {
    public static let help: [String: String] = [
        "maxSeqLen": "Tokens per window.",
        "docStride": "Tokens between the starts of consecutive context windows.",
        "maxQueryLen": "Question tokens kept.",
    ]
}

/// The WordPiece tokens of one context with their unicode-scalar ranges in the original text.
public struct ContextTokens: Sendable {
    public var ids: [Int32]
    public var starts: [Int32]
    public var ends: [Int32]
    public var count: Int { ids.count }

    public init(_ tok: WordPieceTokenizer, _ text: String) {
        let enc = tok.encodeWithOffsets(text)
        ids = enc.map(\.id); starts = enc.map { Int32($0.start) }; ends = enc.map { Int32($0.end) }
    }

    /// Tokens covering the characters start..<end: (first, last), or nil when none does.
    public func span(start: Int, end: Int) -> (Int, Int)? {
        var lo = 0, hi = count           // first token with ends > start
        while lo < hi { let m = (lo + hi) / 2; if Int(ends[m]) > start { hi = m } else { lo = m + 1 } }
        let first = lo
        lo = 0; hi = count               // first token with starts >= end; last = that - 1
        while lo < hi { let m = (lo + hi) / 2; if Int(starts[m]) >= end { hi = m } else { lo = m + 1 } }
        let last = lo - 1
        return first < count && last >= first ? (first, last) : nil
    }
}

public struct SquadFeature: Sendable {
    public var example: Int           // index into the dataset's examples
    public var ids: [Int32]           // [CLS] question [SEP] window [SEP], unpadded
    public var contextStart: Int      // sequence position of the first window token
    public var docStart: Int          // index of the first window token in the context tokens
    public var docLength: Int
    public var maxContext: [Bool]     // per window token
    public var startPosition: Int32   // training target, 0 = [CLS]
    public var endPosition: Int32
    public var length: Int { ids.count }
}

public struct SquadFeatures: Sendable {
    public var options: SquadFeatureOptions
    public var contextTokens: [ContextTokens]   // per dataset context
    public var features: [SquadFeature]
    public var ofExample: [Range<Int>]          // features of each example (contiguous)
    public var truncatedQuestions = 0
    /// Training examples left out (answer without any token), by reason.
    public var skipped: [String: Int] = [:]
    /// Answerable training features whose window does not contain the answer (target [CLS]).
    public var outOfWindow = 0

    /// Build the features of every example. With `training`, examples whose answer covers no
    /// token are dropped (counted in `skipped`); evaluation keeps every example (one with an
    /// empty context has no features and is predicted "").
    public static func build(_ ds: SquadDataset, tokenizer tok: WordPieceTokenizer, options o: SquadFeatureOptions,
                             training: Bool, log: ((String) -> Void)? = nil) -> SquadFeatures {
        var r = SquadFeatures(options: o, contextTokens: [], features: [], ofExample: [])
        r.contextTokens.reserveCapacity(ds.contexts.count)
        var lastShown = Date()
        for (i, c) in ds.contexts.enumerated() {
            r.contextTokens.append(ContextTokens(tok, c))
            if let log, Date().timeIntervalSince(lastShown) > 10 {
                lastShown = Date()
                log("SQuAD: tokenized \(i + 1)/\(ds.contexts.count) contexts")
            }
        }
        for (e, ex) in ds.examples.enumerated() {
            let first = r.features.count
            defer { r.ofExample.append(first..<r.features.count) }
            let ctx = r.contextTokens[ex.context]
            var target: (Int, Int)? = nil
            if training, let a = ex.answers.first {
                guard let t = ctx.span(start: a.start, end: a.start + a.text.unicodeScalars.count) else {
                    r.skipped["answer covers no token", default: 0] += 1
                    continue
                }
                target = t
            }
            var q = tok.encode(ex.question)
            if q.count > o.maxQueryLen { q.removeLast(q.count - o.maxQueryLen); r.truncatedQuestions += 1 }
            let maxDoc = o.maxSeqLen - q.count - 3
            // window starts, as the original: advance by min(length, stride) until the end is covered
            var spans: [(start: Int, length: Int)] = []
            var offset = 0
            while offset < ctx.count {
                let length = min(ctx.count - offset, maxDoc)
                spans.append((offset, length))
                if offset + length == ctx.count { break }
                offset += min(length, o.docStride)
            }
            for (si, span) in spans.enumerated() {
                var ids: [Int32] = [tok.clsId]
                ids.reserveCapacity(q.count + span.length + 3)
                ids += q
                ids.append(tok.sepId)
                let contextStart = ids.count
                ids += ctx.ids[span.start..<span.start + span.length]
                ids.append(tok.sepId)
                let maxContext = (0..<span.length).map { isMaxContext(spans, si, span.start + $0) }
                var s: Int32 = 0, en: Int32 = 0
                if let (ts, te) = target {
                    if ts >= span.start && te < span.start + span.length {
                        s = Int32(contextStart + ts - span.start); en = Int32(contextStart + te - span.start)
                    } else {
                        r.outOfWindow += 1
                    }
                }
                r.features.append(SquadFeature(example: e, ids: ids, contextStart: contextStart, docStart: span.start,
                                               docLength: span.length, maxContext: maxContext, startPosition: s, endPosition: en))
            }
        }
        return r
    }

    /// Whether window `cur` gives context token `position` the most context among all windows
    /// containing it (the first such window on ties).
    static func isMaxContext(_ spans: [(start: Int, length: Int)], _ cur: Int, _ position: Int) -> Bool {
        var bestScore = -Double.infinity, best = -1
        for (i, s) in spans.enumerated() {
            let end = s.start + s.length - 1
            guard position >= s.start && position <= end else { continue }
            let score = Double(min(position - s.start, end - position)) + 0.01 * Double(s.length)
            if score > bestScore { bestScore = score; best = i }
        }
        return best == cur
    }

    /// A padded batch of features: ids, token types (1 from the window on), attention mask.
    public static func batch(_ fs: [SquadFeature], padId: Int32) -> Batch {
        let B = fs.count, T = fs.map(\.length).max() ?? 1
        var ids = [Int32](repeating: padId, count: B * T)
        var types = [Int32](repeating: 0, count: B * T), mask = [Int32](repeating: 0, count: B * T)
        for (b, f) in fs.enumerated() {
            for (k, id) in f.ids.enumerated() {
                ids[b * T + k] = id
                mask[b * T + k] = 1
                if k >= f.contextStart { types[b * T + k] = 1 }
            }
        }
        return Batch(ids: ids, typeIds: types, attentionMask: mask, batchSize: B, seqLen: T)
    }
}

/// One micro-batch of QA training features.
public struct QABatch {
    public let batch: Batch
    public let start: [Int32]
    public let end: [Int32]
}

/// The finetuning stream for the shared Trainer: `epochs` passes over the features, each in
/// its own seeded random order, batches of `batchSize` (the last one of a pass may be smaller).
public struct SquadTrainData: TrainingData {
    public struct Cursor: Codable, Equatable {
        public var epoch = 0
        public var position = 0
    }
    public var cursor = Cursor()
    let features: [SquadFeature]
    let epochs: Int
    let batchSize: Int
    let seed: UInt64
    let padId: Int32
    private var order: (epoch: Int, indices: [Int])? = nil

    public init(features: [SquadFeature], epochs: Int, batchSize: Int, seed: UInt64, padId: Int32) {
        self.features = features; self.epochs = epochs; self.batchSize = batchSize; self.seed = seed; self.padId = padId
    }

    /// Optimizer steps for all epochs (one batch per step).
    public var steps: Int { epochs * ((features.count + batchSize - 1) / batchSize) }

    public func tokens(in item: QABatch) -> Int { item.batch.ids.count }

    public mutating func next() throws -> QABatch? {
        if cursor.position >= features.count { cursor.epoch += 1; cursor.position = 0 }
        guard cursor.epoch < epochs, !features.isEmpty else { return nil }
        if order?.epoch != cursor.epoch {
            var idx = Array(features.indices)
            var rng = RNG(seed: seed ^ 0x5351_7541_4400 &+ UInt64(cursor.epoch) &* 0x9E37_79B9)
            rng.shuffle(&idx)
            order = (cursor.epoch, idx)
        }
        let chosen = order!.indices[cursor.position..<min(cursor.position + batchSize, features.count)].map { features[$0] }
        cursor.position += chosen.count
        return QABatch(batch: SquadFeatures.batch(chosen, padId: padId), start: chosen.map(\.startPosition),
                       end: chosen.map(\.endPosition))
    }
}
