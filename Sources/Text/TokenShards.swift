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
    /// Copy tokens [start, start+n) into `out` at `at`.
    public func copy(_ start: Int, _ n: Int, into out: inout [Int32], at: Int) {
        data.withUnsafeBytes { raw in
            let p = raw.bindMemory(to: Int32.self)
            for k in 0..<n { out[at + k] = Int32(littleEndian: p[start + k]) }
        }
    }
}

public struct TokenShardCache {
    public let root: String
    public let files: [String]
    public let valFraction: Double  // documents whose hash falls below this fraction are held out
    let key: String

    public init(root: String, files: [String], vocab: [String], valFraction: Double = 0.005) {
        self.root = root; self.files = files; self.valFraction = valFraction
        var h = StableHash()
        h.add("droplab-token-shards-v1"); h.add(String(valFraction))
        for t in vocab { h.add(t) }
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
    public func shard(_ i: Int, tokenizer: WordPieceTokenizer, log: (String) -> Void) throws -> (train: TokenFile, val: TokenFile) {
        let dir = shardDir(i)
        let train = dir + "/train.i32", val = dir + "/val.i32"
        let fm = FileManager.default
        if !(fm.fileExists(atPath: train) && fm.fileExists(atPath: val)) {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let start = Date()
            var trainOut = try ShardWriter(train), valOut = try ShardWriter(val)
            var bytes = 0, docs = 0
            try Corpus.forEachDocument(files[i]) { doc in
                bytes += doc.utf8.count; docs += 1
                let held = Double(StableHash.of(doc) % 1_000_000) < valFraction * 1_000_000
                var ids = tokenizer.encode(doc)
                if ids.isEmpty { return }
                ids.append(tokenizer.sepId)
                if held { try valOut.append(ids) } else { try trainOut.append(ids) }
            }
            try trainOut.finish(); try valOut.finish()
            let secs = Date().timeIntervalSince(start)
            log(String(format: "tokenized %@: %d documents, %.1f MB in %.1fs (%.1f MB/s), %d train + %d validation tokens",
                       files[i], docs, Double(bytes) / 1e6, secs, Double(bytes) / 1e6 / max(secs, 1e-9),
                       trainOut.count, valOut.count))
        }
        return (try TokenFile(train), try TokenFile(val))
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
