// Token shards: each corpus file is tokenized once into two binary files of little-endian
// Int32 ids (train and held-out validation documents, chosen by document hash), each
// document followed by [SEP]. Shards live in a cache directory keyed by the corpus file
// (path, size, mtime) and the vocabulary, are written atomically, and are memory-mapped.

import Foundation

public final class TokenFile {
    public let path: String
    private let data: Data
    public let count: Int
    public init(_ path: String) throws {
        self.path = path
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw CorpusError("\(path): cannot read token shard")
        }
        guard data.count % 4 == 0 else { throw CorpusError("\(path): token shard is truncated") }
        count = data.count / 4
    }
    /// Every token.
    public func all() -> [Int32] {
        var out = [Int32](repeating: 0, count: count)
        copy(0, count, into: &out, at: 0)
        return out
    }
    /// Copy tokens [start, start+n) into `out` at `at`.
    public func copy(_ start: Int, _ n: Int, into out: inout [Int32], at: Int) {
        data.withUnsafeBytes { raw in
            let p = raw.bindMemory(to: Int32.self)
            for k in 0..<n { out[at + k] = Int32(littleEndian: p[start + k]) }
        }
    }
}

/// Salient words (salient-span masking, Guu et al. 2020, REALM): a corpus line equal to one of
/// `words`' keys has the pieces of its word marked in the training shard (every occurrence), so pretraining can
/// choose them for the loss at their own rate (`Masker`). `pretrain --salient FILE` reads them
/// from JSONL lines {"line": ..., "word": ...} (`corpus facts` writes one: each statement and
/// its object).
public struct SalientLines: Sendable {
    public let words: [String: String]   // corpus line -> the word in it to mark
    public let digest: String            // of every (line, word), for the shard cache key
    public init(_ words: [String: String]) {
        self.words = words
        var h = StableHash()
        for (l, w) in words.sorted(by: { $0.key < $1.key }) { h.add(l); h.add(w) }
        digest = h.hex
    }

    struct Line: Decodable { let line: String; let word: String }

    /// Read `path`; errors name `flag` and the file and line.
    public static func read(_ path: String, flag: String) throws -> SalientLines {
        guard let data = FileManager.default.contents(atPath: path) else { throw CorpusError("--\(flag): cannot read \(path)") }
        var words: [String: String] = [:]
        for (i, raw) in data.split(separator: 0x0A).enumerated() where !raw.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) {
            guard let l = try? JSONDecoder().decode(Line.self, from: Data(raw)) else {
                throw CorpusError("--\(flag): \(path):\(i + 1): not a JSON object with \"line\" and \"word\" strings")
            }
            guard l.line.contains(l.word) else { throw CorpusError("--\(flag): \(path):\(i + 1): the word '\(l.word)' is not in its line") }
            guard words.updateValue(l.word, forKey: l.line) ?? l.word == l.word else {
                throw CorpusError("--\(flag): \(path):\(i + 1): the line is given twice with different words")
            }
        }
        guard !words.isEmpty else { throw CorpusError("--\(flag): \(path) has no lines") }
        return SalientLines(words)
    }

    /// The ids of `doc` (as `tokenizer.encode(doc)`: lines are encoded one by one, which gives the
    /// same ids since a newline only separates words) and the positions in them of the marked pieces.
    func encode(_ doc: String, _ tokenizer: WordPieceTokenizer) -> (ids: [Int32], marked: [Int]) {
        var ids: [Int32] = [], marked: [Int] = []
        for line in doc.split(separator: "\n", omittingEmptySubsequences: false) {
            let start = ids.count
            tokenizer.encode(String(line), into: &ids)
            guard let word = words[String(line)] else { continue }
            let w = tokenizer.encode(word)
            guard !w.isEmpty, ids.count - start >= w.count else { continue }
            for at in start...(ids.count - w.count) where ids[at..<(at + w.count)].elementsEqual(w) { marked += at..<(at + w.count) }
        }
        return (ids, marked)
    }
}

/// A shard's training tokens, validation tokens and the sorted positions of the salient pieces
/// in the training tokens (empty without `SalientLines`).
public typealias TokenShard = (train: TokenFile, val: TokenFile, salient: [Int32])

public struct TokenShardCache {
    public let root: String
    public let files: [String]
    public let valFraction: Double  // documents whose hash falls below this fraction are held out
    public let salient: SalientLines?
    let key: String

    public init(root: String, files: [String], vocab: [String], valFraction: Double = 0.005, salient: SalientLines? = nil) {
        self.root = root; self.files = files; self.valFraction = valFraction; self.salient = salient
        var h = StableHash()
        h.add("droplab-token-shards-v1"); h.add(String(valFraction))
        for t in vocab { h.add(t) }
        if let salient { h.add("salient"); h.add(salient.digest) }
        key = h.hex
    }

    func shardDir(_ i: Int) -> String {
        let attrs = try? FileManager.default.attributesOfItem(atPath: files[i])
        var h = StableHash()
        h.add(key); h.add((files[i] as NSString).standardizingPath)
        h.add(String(attrs?[.size] as? Int ?? 0)); h.add(String((attrs?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0))
        return root + "/tokens-" + h.hex
    }

    /// Train and validation token files of corpus file `i`, tokenizing it first if needed.
    public func shard(_ i: Int, tokenizer: WordPieceTokenizer, log: (String) -> Void) throws -> TokenShard {
        let dir = shardDir(i)
        let train = dir + "/train.i32", val = dir + "/val.i32", marks = dir + "/train-salient.i32"
        let fm = FileManager.default
        if !([train, val] + (salient == nil ? [] : [marks])).allSatisfy(fm.fileExists(atPath:)) {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let start = Date()
            var trainOut = try ShardWriter(train), valOut = try ShardWriter(val)
            var marksOut = try salient.map { _ in try ShardWriter(marks) }
            var bytes = 0, docs = 0
            try Corpus.forEachDocument(files[i]) { doc in
                bytes += doc.utf8.count; docs += 1
                let held = Double(StableHash.of(doc) % 1_000_000) < valFraction * 1_000_000
                var (ids, marked) = salient?.encode(doc, tokenizer) ?? (tokenizer.encode(doc), [])
                if ids.isEmpty { return }
                ids.append(tokenizer.sepId)
                if held { try valOut.append(ids); return }
                if !marked.isEmpty { try marksOut?.append(marked.map { Int32(trainOut.count + $0) }) }
                try trainOut.append(ids)
            }
            try trainOut.finish(); try valOut.finish(); try marksOut?.finish()
            let secs = Date().timeIntervalSince(start)
            log(String(format: "tokenized %@: %d documents, %.1f MB in %.1fs (%.1f MB/s), %d train + %d validation tokens",
                       files[i], docs, Double(bytes) / 1e6, secs, Double(bytes) / 1e6 / max(secs, 1e-9),
                       trainOut.count, valOut.count) + (marksOut.map { ", \($0.count) salient pieces" } ?? ""))
        }
        let salientPositions = salient == nil ? [] : try TokenFile(marks).all()
        return (try TokenFile(train), try TokenFile(val), salientPositions)
    }
}

/// Buffered Int32 writer to `path.tmp-<pid>`, renamed into place by finish(): processes that
/// tokenize the same file at once (recipe jobs on several MPI ranks) each write their own
/// copy, and the same bytes land in place whichever renames last.
struct ShardWriter {
    let path: String
    let tmp: String
    let handle: FileHandle
    var buffer: [Int32] = []
    var count = 0
    init(_ path: String) throws {
        self.path = path
        tmp = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: tmp, contents: nil),
              let h = FileHandle(forWritingAtPath: tmp) else {
            throw CorpusError("\(tmp): cannot create token shard")
        }
        handle = h
    }
    mutating func append(_ ids: [Int32]) throws {
        buffer += ids; count += ids.count
        if buffer.count >= 1 << 20 { flush() }
    }
    mutating func flush() {
        buffer.withUnsafeBytes { handle.write(Data($0)) }   // little-endian on every supported host
        buffer.removeAll(keepingCapacity: true)
    }
    mutating func finish() throws {
        flush()
        handle.closeFile()
        guard rename(tmp, path) == 0 else { throw CorpusError("\(path): cannot write token shard") }
    }
}
