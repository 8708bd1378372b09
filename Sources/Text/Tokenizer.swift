// WordPiece tokenizer for BERT vocabularies (vocab.txt), matching Hugging Face's
// `BertTokenizerFast` with do_lower_case=True (lower-case + strip accents,
// tokenize_chinese_chars=True) token for token, including its offsets.
//
//   let tok = try WordPieceTokenizer(vocabFile: "vocab.txt")
//   tok.encode("Hello, world!")            // ids, no [CLS]/[SEP]
//   tok.encodeWithOffsets("Café au lait")  // ids + unicode-scalar ranges in the input
//
// Pipeline: basic tokenizer (TokenizerBasic.swift) -> greedy longest-match-first WordPiece
// over the normalized UTF-8 bytes with a byte trie ("##" pieces after the first), a word of
// more than 100 scalars or with no segmentation becomes [UNK].
//
// HF behaviours reproduced on purpose:
//  * vocab.txt lines are split on "\n" and trailing whitespace (incl. "\r") is trimmed;
//    when a token occurs twice the LAST occurrence's id wins (as HF's dict insert).
//  * The five special tokens are recognised verbatim in the raw text ("[MASK]" -> the mask
//    id, "[mask]" is ordinary text), even when no special tokens are added.

import Foundation

public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case unreadableVocabulary(path: String, reason: String)
    case emptyVocabulary(path: String)
    case missingSpecialTokens(path: String, missing: [String])

    public var description: String {
        switch self {
        case let .unreadableVocabulary(path, reason):
            return "cannot read vocabulary file \(path): \(reason)"
        case let .emptyVocabulary(path):
            return "vocabulary file \(path) is empty"
        case let .missingSpecialTokens(path, missing):
            return "vocabulary \(path) lacks the special token(s) \(missing.joined(separator: ", "))"
        }
    }
}

/// A byte trie over vocabulary tokens: children in one open-addressing hash table keyed by
/// (node << 8 | byte), token ids per node.
struct PieceTrie {
    private(set) var terminal: [Int32] = []     // token id ending at node, or -1
    private var keys: [UInt64] = []
    private var values: [Int32] = []
    private var shift: UInt64 = 64
    private var edgeCount = 0

    init() {}

    /// Read-only pointers into the trie for the duration of `body` (no reference counting
    /// in the WordPiece loop).
    func withView<R>(_ body: (TrieView) -> R) -> R {
        keys.withUnsafeBufferPointer { k in
            values.withUnsafeBufferPointer { v in
                terminal.withUnsafeBufferPointer { t in
                    body(TrieView(keys: k.baseAddress!, values: v.baseAddress!, terminal: t.baseAddress!,
                                  mask: k.count - 1, shift: shift))
                }
            }
        }
    }

    mutating func newNode() -> Int32 {
        terminal.append(-1)
        return Int32(terminal.count - 1)
    }

    @inline(__always) private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    @inline(__always) func child(_ node: Int32, _ byte: UInt8) -> Int32 {
        let key = (UInt64(UInt32(bitPattern: node)) << 8) | UInt64(byte)
        let mask = keys.count - 1
        var s = slot(key)
        while true {
            let k = keys[s]
            if k == key { return values[s] }
            if k == UInt64.max { return -1 }
            s = (s + 1) & mask
        }
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        let capacity = Swift.max(1024, keys.count * 2)
        keys = [UInt64](repeating: .max, count: capacity)
        values = [Int32](repeating: -1, count: capacity)
        shift = UInt64(64 - capacity.trailingZeroBitCount)
        for (k, v) in zip(oldKeys, oldValues) where k != .max { put(k, v) }
    }

    private mutating func put(_ key: UInt64, _ value: Int32) {
        let mask = keys.count - 1
        var s = slot(key)
        while keys[s] != .max && keys[s] != key { s = (s + 1) & mask }
        keys[s] = key
        values[s] = value
    }

    mutating func insert<C: Collection>(_ bytes: C, from root: Int32, id: Int32) where C.Element == UInt8 {
        var node = root
        for b in bytes {
            var next = keys.isEmpty ? -1 : child(node, b)
            if next < 0 {
                next = newNode()
                if (edgeCount + 1) * 2 > keys.count { grow() }
                put((UInt64(UInt32(bitPattern: node)) << 8) | UInt64(b), next)
                edgeCount += 1
            }
            node = next
        }
        terminal[Int(node)] = id   // later duplicates overwrite: last occurrence wins
    }
}

struct TrieView {
    let keys: UnsafePointer<UInt64>
    let values: UnsafePointer<Int32>
    let terminal: UnsafePointer<Int32>
    let mask: Int
    let shift: UInt64

    @inline(__always) func child(_ node: Int32, _ byte: UInt8) -> Int32 {
        let key = (UInt64(UInt32(bitPattern: node)) << 8) | UInt64(byte)
        var s = Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
        while true {
            let k = keys[s]
            if k == key { return values[s] }
            if k == UInt64.max { return -1 }
            s = (s + 1) & mask
        }
    }
}

public final class WordPieceTokenizer: @unchecked Sendable {
    /// The vocabulary, one entry per line of vocab.txt (ids are line numbers).
    public let vocab: [String]
    public let padId: Int32
    public let unkId: Int32
    public let clsId: Int32
    public let sepId: Int32
    public let maskId: Int32
    /// Words longer than this (in normalized unicode scalars) become [UNK].
    public let maxInputCharsPerWord = 100
    /// Whether "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" in the text map to their ids (HF does).
    public let recognizesSpecialTokens: Bool

    public static let specialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    private let ids: [String: Int32]
    private let trie: PieceTrie
    private static let wordRoot: Int32 = 0
    private static let continuationRoot: Int32 = 1
    private let specialPatterns: [[UInt8]]
    private let specialIds: [Int32]

    /// Loads a BERT vocab.txt (one token per line).
    public convenience init(vocabFile: String, recognizesSpecialTokens: Bool = true) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: vocabFile, isDirectory: &isDir) else {
            throw TokenizerError.unreadableVocabulary(path: vocabFile, reason: "no such file")
        }
        guard !isDir.boolValue, let data = FileManager.default.contents(atPath: vocabFile) else {
            throw TokenizerError.unreadableVocabulary(path: vocabFile, reason: isDir.boolValue ? "is a directory" : "cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TokenizerError.unreadableVocabulary(path: vocabFile, reason: "not valid UTF-8")
        }
        try self.init(vocab: WordPieceTokenizer.parseVocabulary(text), source: vocabFile,
                      recognizesSpecialTokens: recognizesSpecialTokens)
    }

    /// Uses `vocab` as is (ids are indices).
    public convenience init(vocab: [String], recognizesSpecialTokens: Bool = true) throws {
        try self.init(vocab: vocab, source: "<in-memory vocabulary>", recognizesSpecialTokens: recognizesSpecialTokens)
    }

    /// Splits vocab.txt contents into tokens as HF does: lines split on "\n", trailing
    /// whitespace trimmed, no extra entry for a final newline.
    public static func parseVocabulary(_ text: String) -> [String] {
        // Split on the scalar "\n" (splitting the String would keep "\r\n" together).
        var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines.map { line in
            var scalars = line
            while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() }
            return String(scalars)
        }
    }

    private init(vocab: [String], source: String, recognizesSpecialTokens: Bool) throws {
        if vocab.isEmpty { throw TokenizerError.emptyVocabulary(path: source) }
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(vocab.count)
        var trie = PieceTrie()
        _ = trie.newNode()  // word-initial root
        _ = trie.newNode()  // continuation ("##") root
        for (i, token) in vocab.enumerated() {
            let id = Int32(i)
            ids[token] = id
            if token.isEmpty { continue }
            trie.insert(token.utf8, from: WordPieceTokenizer.wordRoot, id: id)
            // Compare bytes: String.hasPrefix works on Characters, and in "##ि" the spacing
            // mark makes the second "#" part of a different Character.
            if token.utf8.count > 2, token.utf8.starts(with: "##".utf8) {
                trie.insert(token.utf8.dropFirst(2), from: WordPieceTokenizer.continuationRoot, id: id)
            }
        }
        let missing = WordPieceTokenizer.specialTokens.filter { ids[$0] == nil }
        if !missing.isEmpty { throw TokenizerError.missingSpecialTokens(path: source, missing: missing) }
        self.vocab = vocab
        self.ids = ids
        self.trie = trie
        self.padId = ids["[PAD]"]!
        self.unkId = ids["[UNK]"]!
        self.clsId = ids["[CLS]"]!
        self.sepId = ids["[SEP]"]!
        self.maskId = ids["[MASK]"]!
        self.recognizesSpecialTokens = recognizesSpecialTokens
        self.specialPatterns = recognizesSpecialTokens ? WordPieceTokenizer.specialTokens.map { Array($0.utf8) } : []
        self.specialIds = WordPieceTokenizer.specialTokens.map { ids[$0]! }
    }

    public var vocabSize: Int { vocab.count }

    /// The id of `token` (for a duplicated token, its last line), or nil.
    public func id(of token: String) -> Int32? { ids[token] }

    /// The token on line `id` of the vocabulary, or nil when out of range.
    public func token(of id: Int32) -> String? {
        id >= 0 && Int(id) < vocab.count ? vocab[Int(id)] : nil
    }

    // MARK: Encoding

    /// WordPiece tokens of `text` (no special tokens added).
    public func tokenize(_ text: String) -> [String] {
        encode(text).map { vocab[Int($0)] }
    }

    /// Token ids of `text` (no [CLS]/[SEP] added).
    public func encode(_ text: String) -> [Int32] {
        var out: [Int32] = []
        encode(text, into: &out)
        return out
    }

    /// Appends the token ids of `text` to `ids`.
    public func encode(_ text: String, into ids: inout [Int32]) {
        trie.withView { view in
            var sink = PieceSink(self, view, withOffsets: false)
            swap(&sink.ids, &ids)
            BasicTokenizer.run(text, specials: specialPatterns, sink: &sink)
            swap(&sink.ids, &ids)
            sink.release()
        }
    }

    /// Token ids with, for each, the range start..<end of original unicode scalars
    /// (`text.unicodeScalars` positions) it was produced from.
    public func encodeWithOffsets(_ text: String) -> [(id: Int32, start: Int, end: Int)] {
        trie.withView { view in
            var sink = PieceSink(self, view, withOffsets: true)
            BasicTokenizer.run(text, specials: specialPatterns, sink: &sink)
            sink.release()
            return (0..<sink.ids.count).map { (sink.ids[$0], Int(sink.starts[$0]), Int(sink.ends[$0])) }
        }
    }

    /// The pre-tokens (normalized words) of the basic tokenizer, without WordPiece.
    public static func basicTokenize(_ text: String) -> [String] {
        var sink = WordStringSink()
        BasicTokenizer.run(text, specials: [], sink: &sink)
        return sink.words
    }

    /// Writes a vocabulary as vocab.txt (one token per line).
    public static func writeVocabulary(_ vocab: [String], to path: String) throws {
        let text = vocab.joined(separator: "\n") + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    // MARK: WordPiece

    private struct PieceSink: BasicTokenSink {
        let trie: TrieView
        let specialIds: UnsafeMutablePointer<Int32>
        let unkId: Int32
        let maxChars: Int
        let withOffsets: Bool
        var ids: [Int32] = []
        var starts: [Int32] = []
        var ends: [Int32] = []
        // Pieces of the current word: id, byte start, byte end (manually managed).
        var pieces: UnsafeMutablePointer<(Int32, Int32, Int32)>
        var pieceCapacity = 64

        init(_ tokenizer: WordPieceTokenizer, _ trie: TrieView, withOffsets: Bool) {
            self.trie = trie
            specialIds = .allocate(capacity: tokenizer.specialIds.count)
            specialIds.initialize(from: tokenizer.specialIds, count: tokenizer.specialIds.count)
            unkId = tokenizer.unkId
            maxChars = tokenizer.maxInputCharsPerWord
            self.withOffsets = withOffsets
            pieces = .allocate(capacity: pieceCapacity)
        }

        func release() {
            specialIds.deallocate()
            pieces.deallocate()
        }

        mutating func special(_ which: Int, start: Int, end: Int) {
            ids.append(specialIds[which])
            if withOffsets { starts.append(Int32(start)); ends.append(Int32(end)) }
        }

        mutating func word(bytes: UnsafeBufferPointer<UInt8>, origin: UnsafeBufferPointer<Int32>, scalarCount: Int) {
            let n = bytes.count
            if scalarCount <= maxChars {
                if n > pieceCapacity {
                    pieces.deallocate()
                    pieceCapacity = n
                    pieces = .allocate(capacity: n)
                }
                var count = 0
                var start = 0
                var ok = true
                // Greedy longest match: walk the trie as far as the bytes allow and keep
                // the last token boundary seen ("##" tokens live under their own root).
                while start < n {
                    var node = start == 0 ? WordPieceTokenizer.wordRoot : WordPieceTokenizer.continuationRoot
                    var best: Int32 = -1
                    var bestEnd = start
                    var j = start
                    while j < n {
                        node = trie.child(node, bytes[j])
                        if node < 0 { break }
                        j += 1
                        let t = trie.terminal[Int(node)]
                        if t >= 0 { best = t; bestEnd = j }
                    }
                    if best < 0 { ok = false; break }
                    pieces[count] = (best, Int32(start), Int32(bestEnd))
                    count += 1
                    start = bestEnd
                }
                if ok {
                    for i in 0..<count {
                        let p = pieces[i]
                        ids.append(p.0)
                        if withOffsets {
                            starts.append(origin[Int(p.1)])
                            ends.append(origin[Int(p.2) - 1] + 1)
                        }
                    }
                    return
                }
            }
            ids.append(unkId)
            if withOffsets {
                starts.append(origin[0])
                ends.append(origin[n - 1] + 1)
            }
        }
    }
}
