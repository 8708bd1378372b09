// The pretraining stream: token shards of the corpus files, in file order; within a file,
// fixed-length sequences ([CLS] + T-2 tokens + [SEP]) in a seeded random order; each batch
// MLM-masked with a seeded RNG. Single epoch: next() returns nil after the last sequence.
// An optional short-sequence phase serves the first micro-batches as shorter sequences cut
// from the same units (each [CLS] + T-2 tokens unit gives (T-2)/(L-2) sequences of length L, the
// remainder of the unit skipped), so the data order, the cursor and the steps stay those of the
// long sequences.

import Autograd
import BERT
import Text

public struct MLMExample {
    public let batch: Batch
    public let labels: [Int32]
}

/// Pack a token file into sequences of `seqLen`: [CLS] chunk [SEP].
public struct SequencePacker {
    public let seqLen: Int
    public let cls: Int32, sep: Int32
    public init(seqLen: Int, cls: Int32, sep: Int32) { self.seqLen = seqLen; self.cls = cls; self.sep = sep }
    public func count(_ f: TokenFile) -> Int { f.count / (seqLen - 2) }
    public func sequence(_ f: TokenFile, _ k: Int, into out: inout [Int32], at: Int) {
        pieces(f, k, length: seqLen, into: &out, at: at)
    }
    /// Sequences of `length` cut from unit `k`: how many, and writing them at `at`.
    public func pieces(length: Int) -> Int { (seqLen - 2) / (length - 2) }
    public func pieces(_ f: TokenFile, _ k: Int, length: Int, into out: inout [Int32], at: Int) {
        for s in spans(k, length: length, at: at) {
            out[s.at - 1] = cls
            f.copy(s.start, s.count, into: &out, at: s.at)
            out[s.at + s.count] = sep
        }
    }
    /// Where unit `k`'s tokens go when cut into sequences of `length` written at `at`: per
    /// sequence, the first token's position in the file, the token count, and its place in the output.
    public func spans(_ k: Int, length: Int, at: Int) -> [(start: Int, count: Int, at: Int)] {
        (0..<pieces(length: length)).map { j in (k * (seqLen - 2) + j * (length - 2), length - 2, at + j * length + 1) }
    }
}

public struct PretrainData: TrainingData {
    public struct Cursor: Codable, Equatable {
        public var file = 0          // corpus file index
        public var position = 0      // next sequence in that file's permutation
        public var maskRNG: UInt64   // masking RNG state
        public var batches = 0       // micro-batches served (ends the short-sequence phase)
        init(maskRNG: UInt64) { self.maskRNG = maskRNG }
        public init(from d: Decoder) throws {   // runs saved before `batches` existed resume with 0
            let c = try d.container(keyedBy: CodingKeys.self)
            file = try c.decode(Int.self, forKey: .file); position = try c.decode(Int.self, forKey: .position)
            maskRNG = try c.decode(UInt64.self, forKey: .maskRNG)
            batches = try c.decodeIfPresent(Int.self, forKey: .batches) ?? 0
        }
    }
    public var cursor: Cursor
    let cache: TokenShardCache
    let tokenizer: WordPieceTokenizer
    let packer: SequencePacker
    let batchSize: Int
    let seed: UInt64
    let masker: Masker
    let short: (seqLen: Int, batches: Int)?   // the first `batches` micro-batches at `seqLen`
    let log: (String) -> Void
    private var loaded: (file: Int, tokens: TokenFile, salient: [Int32], order: [Int32])? = nil

    public init(cache: TokenShardCache, tokenizer: WordPieceTokenizer, seqLen: Int, batchSize: Int, seed: UInt64,
                masker: Masker, short: (seqLen: Int, batches: Int)? = nil, log: @escaping (String) -> Void) {
        self.cache = cache; self.tokenizer = tokenizer; self.batchSize = batchSize; self.seed = seed
        self.masker = masker; self.short = short; self.log = log
        packer = SequencePacker(seqLen: seqLen, cls: tokenizer.clsId, sep: tokenizer.sepId)
        cursor = Cursor(maskRNG: RNG(seed: seed ^ 0x6D61_736B).state)
    }

    public func tokens(in item: MLMExample) -> Int { item.batch.ids.count }

    public mutating func next() throws -> MLMExample? {
        let shortLen = short.flatMap { cursor.batches < $0.batches ? $0.seqLen : nil }
        let T = shortLen ?? packer.seqLen, per = shortLen.map(packer.pieces(length:)) ?? 1
        var ids = [Int32](repeating: 0, count: batchSize * per * T)
        var marks = cache.salient == nil ? nil : [Bool](repeating: false, count: ids.count)
        var filled = 0
        while filled < batchSize {
            guard cursor.file < cache.files.count else { return nil }
            if loaded?.file != cursor.file {
                let shard = try cache.shard(cursor.file, tokenizer: tokenizer, log: log)
                var order = (0..<Int32(packer.count(shard.train))).map { $0 }
                var rng = RNG(seed: seed &+ UInt64(cursor.file) &* 0x9E37)
                rng.shuffle(&order)
                loaded = (cursor.file, shard.train, shard.salient, order)
            }
            let (_, tokens, salient, order) = loaded!
            if cursor.position >= order.count { cursor.file += 1; cursor.position = 0; continue }
            let k = Int(order[cursor.position]), at = filled * per * T
            packer.pieces(tokens, k, length: T, into: &ids, at: at)
            if marks != nil {
                for s in packer.spans(k, length: T, at: at) { Self.mark(salient, s.start, s.count, into: &marks!, at: s.at) }
            }
            cursor.position += 1; filled += 1
        }
        var rng = RNG(state: cursor.maskRNG)
        let labels = masker.apply(&ids, salient: marks, rng: &rng)
        cursor.maskRNG = rng.state
        cursor.batches += 1
        return MLMExample(batch: Batch(ids: ids, batchSize: batchSize * per, seqLen: T), labels: labels)
    }

    /// Set `marks[at + p - start]` for each salient position p in [start, start + n).
    static func mark(_ salient: [Int32], _ start: Int, _ n: Int, into marks: inout [Bool], at: Int) {
        var lo = 0, hi = salient.count
        while lo < hi { let m = (lo + hi) / 2; if Int(salient[m]) < start { lo = m + 1 } else { hi = m } }
        while lo < salient.count && Int(salient[lo]) < start + n { marks[at + Int(salient[lo]) - start] = true; lo += 1 }
    }
}
