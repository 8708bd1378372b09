// WordPiece vocabulary learner (for `droplab tokenizer train`).
//
// The procedure is the one Hugging Face `tokenizers`' WordPieceTrainer uses: BPE merges over
// words written as [c1, ##c2, ##c3, ...], merging the most frequent adjacent pair each step
// ("ab" + "##c" -> "abc", "##ab" + "##c" -> "##abc"); the vocabulary is then used with
// greedy longest-match WordPiece at tokenization time.
//
//   1. Count words after BERT's basic tokenizer (lower-case, strip accents, split on
//      whitespace/punctuation, CJK ideographs alone). Memory is bounded by the number of
//      distinct words; past `maxDistinctWords`, the rarest words are pruned (counts of the
//      remaining words stay exact). Words longer than 100 scalars are skipped (they become
//      [UNK] anyway).
//   2. Alphabet: the `limitAlphabet` most frequent characters; each one gets its plain form
//      if seen at the start of a word and its ## form if seen inside one. Words with other
//      characters take no part in merging.
//   3. Merge until the vocabulary has `vocabSize` entries or no pair occurs at least
//      `minFrequency` times (then the vocabulary is smaller; the log says so).
//
// Output order: [PAD] [UNK] [CLS] [SEP] [MASK] (ids 0-4), the plain characters (by code
// point), their ## forms (by code point), then merged pieces in the order learned. Ties are
// broken by the pair's strings (UTF-8 byte order), so the result is deterministic.

import Foundation

/// Word frequencies after the basic tokenizer, accumulated one text at a time.
public struct WordCounts {
    public private(set) var counts: [String: Int] = [:]
    /// Total words seen (including pruned and over-long ones).
    public private(set) var totalWords = 0
    /// Distinct words kept before pruning kicks in.
    public let maxDistinctWords: Int
    /// Words whose count was below the pruning threshold when the table was full.
    public private(set) var prunedWords = 0
    private var pruneBelow = 2

    public init(maxDistinctWords: Int = 4_000_000) {
        self.maxDistinctWords = max(1, maxDistinctWords)
    }

    public var distinctWords: Int { counts.count }

    public mutating func add(_ text: String) {
        var sink = CountingSink(counts: counts)
        counts = [:]  // keep the dictionary uniquely referenced inside the sink
        BasicTokenizer.run(text, specials: [], sink: &sink)
        counts = sink.counts
        totalWords += sink.words
        if counts.count > maxDistinctWords { prune() }
    }

    /// Drops words seen fewer than `pruneBelow` times, raising the bar until the table is at
    /// most 3/4 full, so pruning stays rare.
    private mutating func prune() {
        while counts.count > maxDistinctWords * 3 / 4 {
            let before = counts.count
            counts = counts.filter { $0.value >= pruneBelow }
            prunedWords += before - counts.count
            if counts.count > maxDistinctWords * 3 / 4 { pruneBelow += 1 }
        }
    }

    private struct CountingSink: BasicTokenSink {
        var counts: [String: Int]
        var words = 0
        mutating func word(bytes: UnsafeBufferPointer<UInt8>, origin: UnsafeBufferPointer<Int32>, scalarCount: Int) {
            words += 1
            if scalarCount > 100 { return }
            counts[String(decoding: bytes, as: UTF8.self), default: 0] += 1
        }
        mutating func special(_ which: Int, start: Int, end: Int) {}
    }
}

public enum VocabTrainer {
    /// Learns a WordPiece vocabulary of at most `vocabSize` entries from `texts` (each a line
    /// or document). See the file header for the procedure.
    public static func trainVocabulary(texts: some Sequence<String>, vocabSize: Int, minFrequency: Int = 2,
                                       limitAlphabet: Int = 1000, maxDistinctWords: Int = 4_000_000,
                                       log: ((String) -> Void)? = nil) -> [String] {
        var counts = WordCounts(maxDistinctWords: maxDistinctWords)
        for t in texts { counts.add(t) }
        return trainVocabulary(counts: counts, vocabSize: vocabSize, minFrequency: minFrequency,
                               limitAlphabet: limitAlphabet, log: log)
    }

    /// Learns a vocabulary from word counts accumulated with `WordCounts.add`.
    public static func trainVocabulary(counts: WordCounts, vocabSize: Int, minFrequency: Int = 2,
                                       limitAlphabet: Int = 1000, log: ((String) -> Void)? = nil) -> [String] {
        var trainer = MergeTrainer(counts: counts.counts, vocabSize: vocabSize,
                                   minFrequency: max(1, minFrequency), limitAlphabet: max(1, limitAlphabet))
        let vocab = trainer.run()
        log?("vocabulary: \(counts.totalWords) words, \(counts.distinctWords) distinct"
             + (counts.prunedWords > 0 ? " (\(counts.prunedWords) rare ones pruned)" : "")
             + ", alphabet \(trainer.alphabetSize) characters, \(trainer.mergeCount) merges -> \(vocab.count) tokens")
        if vocab.count < vocabSize {
            log?("corpus too small: learned \(vocab.count) tokens, fewer than the \(vocabSize) requested "
                 + "(no pair occurs \(minFrequency)+ times)")
        }
        return vocab
    }
}

extension WordPieceTokenizer {
    /// Same as `VocabTrainer.trainVocabulary(texts:vocabSize:...)`.
    public static func trainVocabulary(texts: some Sequence<String>, vocabSize: Int, minFrequency: Int = 2,
                                       limitAlphabet: Int = 1000, maxDistinctWords: Int = 4_000_000,
                                       log: ((String) -> Void)? = nil) -> [String] {
        VocabTrainer.trainVocabulary(texts: texts, vocabSize: vocabSize, minFrequency: minFrequency,
                                     limitAlphabet: limitAlphabet, maxDistinctWords: maxDistinctWords, log: log)
    }
}

/// The BPE-style merge loop over distinct words.
struct MergeTrainer {
    let counts: [String: Int]
    let vocabSize: Int
    let minFrequency: Int
    let limitAlphabet: Int

    var symbols: [[UInt8]] = []            // symbol id -> UTF-8 (with "##" for inner pieces)
    var symbolIds: [[UInt8]: Int32] = [:]
    var words: [[Int32]] = []
    var wordFreq: [Int] = []
    var pairCount: [UInt64: Int] = [:]
    var pairWords: [UInt64: [Int32]] = [:]
    var heap: [(count: Int, pair: UInt64)] = []
    private(set) var alphabetSize = 0
    private(set) var mergeCount = 0

    init(counts: [String: Int], vocabSize: Int, minFrequency: Int, limitAlphabet: Int) {
        self.counts = counts
        self.vocabSize = vocabSize
        self.minFrequency = minFrequency
        self.limitAlphabet = limitAlphabet
    }

    @inline(__always) static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        (UInt64(UInt32(bitPattern: a)) << 32) | UInt64(UInt32(bitPattern: b))
    }

    mutating func symbol(_ bytes: [UInt8]) -> Int32 {
        if let id = symbolIds[bytes] { return id }
        let id = Int32(symbols.count)
        symbols.append(bytes)
        symbolIds[bytes] = id
        return id
    }

    mutating func run() -> [String] {
        var vocab = WordPieceTokenizer.specialTokens
        let budget = vocabSize - vocab.count
        if budget <= 0 { return Array(vocab.prefix(max(0, vocabSize))) }

        // Character frequencies, split by position (word start or inside).
        let sortedWords = counts.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var charTotal: [UInt32: Int] = [:]
        var initialSeen: [UInt32: Int] = [:], innerSeen: [UInt32: Int] = [:]
        for w in sortedWords {
            let c = counts[w]!
            var first = true
            for s in w.unicodeScalars {
                charTotal[s.value, default: 0] += c
                if first { initialSeen[s.value, default: 0] += c } else { innerSeen[s.value, default: 0] += c }
                first = false
            }
        }
        // Alphabet: most frequent characters first (ties by code point), within the budget.
        let byFrequency = charTotal.keys.sorted { (charTotal[$0]!, $1) > (charTotal[$1]!, $0) }
        var plain = Set<UInt32>(), inner = Set<UInt32>()
        var used = 0
        for ch in byFrequency.prefix(limitAlphabet) {
            let forms = (initialSeen[ch] != nil ? 1 : 0) + (innerSeen[ch] != nil ? 1 : 0)
            if used + forms > budget { break }
            if initialSeen[ch] != nil { plain.insert(ch) }
            if innerSeen[ch] != nil { inner.insert(ch) }
            used += forms
        }
        alphabetSize = Set(plain).union(inner).count
        func utf8(_ v: UInt32) -> [UInt8] { Array(String(Unicode.Scalar(v)!).utf8) }
        for ch in plain.sorted() {
            vocab.append(String(Unicode.Scalar(ch)!))
            _ = symbol(utf8(ch))
        }
        for ch in inner.sorted() {
            vocab.append("##" + String(Unicode.Scalar(ch)!))
            _ = symbol(Array("##".utf8) + utf8(ch))
        }

        // Words as symbol sequences (only words fully covered by the alphabet).
        for w in sortedWords {
            var seq: [Int32] = []
            var ok = true
            var first = true
            for s in w.unicodeScalars {
                if first ? !plain.contains(s.value) : !inner.contains(s.value) { ok = false; break }
                seq.append(symbolIds[first ? utf8(s.value) : Array("##".utf8) + utf8(s.value)]!)
                first = false
            }
            if ok && seq.count > 1 {
                words.append(seq)
                wordFreq.append(counts[w]!)
            }
        }
        for (wi, seq) in words.enumerated() {
            for j in 0..<(seq.count - 1) {
                let p = MergeTrainer.key(seq[j], seq[j + 1])
                pairCount[p, default: 0] += wordFreq[wi]
                pairWords[p, default: []].append(Int32(wi))
            }
        }
        for (p, c) in pairCount { push(c, p) }

        var known = Set(vocab)
        var seenStamp = [Int32](repeating: -1, count: words.count)
        var delta: [UInt64: Int] = [:]
        while vocab.count < vocabSize, let top = pop() {
            let current = pairCount[top.pair] ?? 0
            if current != top.count {
                if current > 0 && current < top.count { push(current, top.pair) }
                continue
            }
            if current < minFrequency { break }
            let a = Int32(truncatingIfNeeded: top.pair >> 32), b = Int32(truncatingIfNeeded: top.pair & 0xFFFF_FFFF)
            let merged = symbols[Int(a)] + symbols[Int(b)].dropFirst(2)  // b always starts with "##"
            let m = symbol(merged)
            let text = String(decoding: merged, as: UTF8.self)
            if known.insert(text).inserted { vocab.append(text) }
            mergeCount += 1

            delta.removeAll(keepingCapacity: true)
            let stamp = Int32(mergeCount)
            for wi in pairWords[top.pair] ?? [] where seenStamp[Int(wi)] != stamp {
                seenStamp[Int(wi)] = stamp
                let old = words[Int(wi)]
                var new: [Int32] = []
                new.reserveCapacity(old.count)
                var j = 0
                while j < old.count {
                    if j + 1 < old.count && old[j] == a && old[j + 1] == b {
                        new.append(m); j += 2
                    } else {
                        new.append(old[j]); j += 1
                    }
                }
                if new.count == old.count { continue }
                let f = wordFreq[Int(wi)]
                for j in 0..<(old.count - 1) { delta[MergeTrainer.key(old[j], old[j + 1]), default: 0] -= f }
                for j in 0..<max(0, new.count - 1) {
                    let p = MergeTrainer.key(new[j], new[j + 1])
                    delta[p, default: 0] += f
                    if new[j] == m || new[j + 1] == m { pairWords[p, default: []].append(wi) }
                }
                words[Int(wi)] = new
            }
            pairWords[top.pair] = nil
            for (p, d) in delta where d != 0 {
                let c = (pairCount[p] ?? 0) + d
                if c <= 0 {
                    pairCount[p] = nil
                    pairWords[p] = nil
                } else {
                    pairCount[p] = c
                    if d > 0 { push(c, p) }
                }
            }
        }
        return vocab
    }

    // MARK: Max-heap on (count, then pair strings ascending)

    @inline(__always) func before(_ x: (count: Int, pair: UInt64), _ y: (count: Int, pair: UInt64)) -> Bool {
        if x.count != y.count { return x.count > y.count }
        if x.pair == y.pair { return false }
        let xa = symbols[Int(x.pair >> 32)], ya = symbols[Int(y.pair >> 32)]
        if xa != ya { return xa.lexicographicallyPrecedes(ya) }
        return symbols[Int(x.pair & 0xFFFF_FFFF)].lexicographicallyPrecedes(symbols[Int(y.pair & 0xFFFF_FFFF)])
    }

    mutating func push(_ count: Int, _ pair: UInt64) {
        heap.append((count, pair))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if !before(heap[i], heap[parent]) { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (count: Int, pair: UInt64)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if heap.isEmpty { return top }
        heap[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var best = i
            if l < heap.count && before(heap[l], heap[best]) { best = l }
            if r < heap.count && before(heap[r], heap[best]) { best = r }
            if best == i { break }
            heap.swapAt(i, best)
            i = best
        }
        return top
    }
}
