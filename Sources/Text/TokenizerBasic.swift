// BERT's basic tokenizer (HF BertNormalizer + BertPreTokenizer) as a single pass over the
// UTF-8 bytes of the input: clean text, isolate CJK ideographs, NFD + strip accents,
// lower-case, split on whitespace and punctuation. Each pre-token ("word") is handed to a
// sink as normalized UTF-8 bytes plus, per byte, the index of the original unicode scalar
// it came from (for offsets). Special tokens such as "[MASK]" are matched in the raw text
// first, as HF does for its added tokens.

import Foundation

protocol BasicTokenSink {
    /// One pre-token: `bytes` is its normalized UTF-8, `origin[i]` the index (in unicode
    /// scalars of the original text) of the scalar byte `i` was produced from.
    mutating func word(bytes: UnsafeBufferPointer<UInt8>, origin: UnsafeBufferPointer<Int32>, scalarCount: Int)
    /// Special token number `which` (index into the pattern list), original scalars start..<end.
    mutating func special(_ which: Int, start: Int, end: Int)
}

/// ASCII classes: 0 kept as is (a-z, 0-9), 1 upper case, 2 whitespace, 3 punctuation,
/// 4 removed (other control characters).
let bertASCIIClass: [UInt8] = (0..<128).map { (b: Int) -> UInt8 in
    switch b {
    case 9, 10, 13, 32: return 2
    case 0..<32, 127: return 4
    case 65...90: return 1
    case 33...47, 58...64, 91...96, 123...126: return 3
    default: return 0
    }
}

/// Accumulates the current word. NFD pieces with a non-zero combining class are held in a
/// pending "run" until the next class-0 piece, then stably sorted by class (canonical
/// ordering, as NFD of the whole text would do) and emitted. Offsets inside a reordered run
/// follow HF's alignment bookkeeping, which is positional: the k-th first-piece of the run
/// (in sorted order) gets the k-th original scalar of the run (in input order), and a later
/// piece of a decomposition gets the alignment of the last one assigned before it.
struct WordAssembler {
    // Manually managed so the hot path does no reference counting; released by `release()`.
    var bytes: UnsafeMutablePointer<UInt8>
    var origin: UnsafeMutablePointer<Int32>
    var count = 0
    var capacity = 256
    var scalarCount = 0
    /// Index of the last original scalar that produced normalized output (HF's "consumed").
    var lastK: Int32 = 0

    struct Piece {
        var ccc: UInt8
        var first: Bool        // first NFD piece of its original scalar
        var k: Int32           // its original scalar
        var start: Int32       // output scalars in runScalars[start..<start+count]
        var count: Int32
    }
    var run: [Piece] = []
    var runScalars: [UInt32] = []
    var runFirsts: [Int32] = []
    var runLastBefore: Int32 = 0

    init() {
        bytes = .allocate(capacity: capacity)
        origin = .allocate(capacity: capacity)
    }

    func release() {
        bytes.deallocate()
        origin.deallocate()
    }

    mutating func grow() {
        let newCapacity = capacity * 2
        let b = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        let o = UnsafeMutablePointer<Int32>.allocate(capacity: newCapacity)
        b.update(from: bytes, count: count)
        o.update(from: origin, count: count)
        bytes.deallocate(); origin.deallocate()
        bytes = b; origin = o; capacity = newCapacity
    }

    @inline(__always) mutating func appendASCII(_ b: UInt8, _ k: Int32) {
        if !run.isEmpty { finishRun() }
        if count == capacity { grow() }
        bytes[count] = b
        origin[count] = k
        count += 1
        scalarCount += 1
    }

    @inline(__always) mutating func appendScalar(_ v: UInt32, _ k: Int32) {
        if count + 4 > capacity { grow() }
        scalarCount += 1
        if v < 0x80 {
            bytes[count] = UInt8(v); origin[count] = k; count += 1
            return
        }
        let n: Int
        if v < 0x800 {
            bytes[count] = UInt8(0xC0 | (v >> 6)); bytes[count + 1] = UInt8(0x80 | (v & 0x3F)); n = 2
        } else if v < 0x10000 {
            bytes[count] = UInt8(0xE0 | (v >> 12)); bytes[count + 1] = UInt8(0x80 | ((v >> 6) & 0x3F))
            bytes[count + 2] = UInt8(0x80 | (v & 0x3F)); n = 3
        } else {
            bytes[count] = UInt8(0xF0 | (v >> 18)); bytes[count + 1] = UInt8(0x80 | ((v >> 12) & 0x3F))
            bytes[count + 2] = UInt8(0x80 | ((v >> 6) & 0x3F)); bytes[count + 3] = UInt8(0x80 | (v & 0x3F)); n = 4
        }
        for j in 0..<n { origin[count + j] = k }
        count += n
    }

    /// Sorts the pending run by combining class and emits its output.
    mutating func finishRun() {
        if run.isEmpty { return }
        runFirsts.removeAll(keepingCapacity: true)
        for p in run where p.first { runFirsts.append(p.k) }
        // Stable insertion sort by combining class (runs are short).
        if run.count > 1 {
            for i in 1..<run.count {
                let p = run[i]
                var j = i
                while j > 0 && run[j - 1].ccc > p.ccc { run[j] = run[j - 1]; j -= 1 }
                run[j] = p
            }
        }
        var q = 0
        var last = runLastBefore
        for p in run {
            let o: Int32
            if p.first { o = runFirsts[q]; q += 1; last = o } else { o = last }
            for j in Int(p.start)..<Int(p.start + p.count) { appendScalar(runScalars[j], o) }
        }
        run.removeAll(keepingCapacity: true)
        runScalars.removeAll(keepingCapacity: true)
    }

    /// Adds the packed NFD pieces (see BertUnicode) of original scalar `k`. Punctuation
    /// becomes a word of its own.
    mutating func addPieces<S: BasicTokenSink>(_ items: UnsafeBufferPointer<UInt32>, _ k: Int32, _ kind: UInt8,
                                               _ sink: inout S) {
        if kind == BertUnicode.kindChinese {
            // HF surrounds the ideograph with spaces: a word of its own.
            flush(&sink)
            for item in items where item & BertUnicode.strippedBit == 0 { appendScalar(BertUnicode.itemScalar(item), k) }
            flush(&sink)
            lastK = k
            return
        }
        var first = true
        var inRun = false   // whether the previous piece went into the run
        for item in items {
            let v = BertUnicode.itemScalar(item)
            if item & BertUnicode.extraBit != 0 {
                if inRun {
                    runScalars.append(v); run[run.count - 1].count += 1
                } else {
                    appendScalar(v, k)
                }
                continue
            }
            let ccc = BertUnicode.itemCCC(item)
            let stripped = item & BertUnicode.strippedBit != 0
            if ccc != 0 {
                if run.isEmpty { runLastBefore = first ? lastK : k }
                run.append(Piece(ccc: ccc, first: first, k: k, start: Int32(runScalars.count),
                                 count: stripped ? 0 : 1))
                if !stripped { runScalars.append(v) }
                inRun = true
            } else {
                if !run.isEmpty { finishRun() }
                inRun = false
                if !stripped {
                    if item & BertUnicode.punctBit != 0 {
                        flush(&sink)
                        appendScalar(v, k)
                        flush(&sink)
                    } else {
                        appendScalar(v, k)
                    }
                }
            }
            first = false
        }
        lastK = k
    }

    @inline(__always) mutating func flush<S: BasicTokenSink>(_ sink: inout S) {
        if !run.isEmpty { finishRun() }
        if count == 0 { return }
        sink.word(bytes: UnsafeBufferPointer(start: bytes, count: count),
                  origin: UnsafeBufferPointer(start: origin, count: count), scalarCount: scalarCount)
        count = 0
        scalarCount = 0
    }
}

enum BasicTokenizer {
    /// Runs the basic tokenizer over `text`. `specials` are raw-text patterns (each must start
    /// with "[" and be ASCII) matched before normalization.
    static func run<S: BasicTokenSink>(_ text: String, specials: [[UInt8]], sink: inout S) {
        var text = text
        text.withUTF8 { utf8 in
            guard let base = utf8.baseAddress else { return }
            run(base, utf8.count, specials: specials, sink: &sink)
        }
    }

    static func run<S: BasicTokenSink>(_ p: UnsafePointer<UInt8>, _ n: Int, specials: [[UInt8]], sink: inout S) {
        var word = WordAssembler()
        defer { word.release() }
        var scratch: [UInt32] = []
        let table = ScalarTable.shared
        var i = 0
        var k: Int32 = 0  // index of the current scalar in the original text
        bertASCIIClass.withUnsafeBufferPointer { cls in
            while i < n {
                let b = p[i]
                if b < 0x80 {
                    switch cls[Int(b)] {
                    case 0:
                        word.appendASCII(b, k); word.lastK = k
                    case 1:
                        word.appendASCII(b &+ 32, k); word.lastK = k
                    case 2:
                        word.flush(&sink); word.lastK = k
                    case 3:
                        if b == 0x5B, !specials.isEmpty,
                           let w = matchSpecial(p + i, n - i, specials) {
                            word.flush(&sink)
                            let len = specials[w].count
                            sink.special(w, start: Int(k), end: Int(k) + len)
                            i += len; k += Int32(len)
                            word.lastK = k - 1
                            continue
                        }
                        word.flush(&sink)
                        word.appendASCII(b, k)
                        word.flush(&sink)
                        word.lastK = k
                    default:
                        break  // control character: removed, does not break the word
                    }
                    i += 1; k += 1
                    continue
                }
                // Multi-byte scalar (the String is valid UTF-8).
                var v: UInt32
                if b < 0xE0 {
                    v = (UInt32(b & 0x1F) << 6) | UInt32(p[i + 1] & 0x3F); i += 2
                } else if b < 0xF0 {
                    v = (UInt32(b & 0x0F) << 12) | (UInt32(p[i + 1] & 0x3F) << 6) | UInt32(p[i + 2] & 0x3F); i += 3
                } else {
                    v = (UInt32(b & 0x07) << 18) | (UInt32(p[i + 1] & 0x3F) << 12)
                        | (UInt32(p[i + 2] & 0x3F) << 6) | UInt32(p[i + 3] & 0x3F); i += 4
                }
                var kind: UInt8
                if v < 0x10000 {
                    kind = table.kinds[Int(v)]
                    if kind == BertUnicode.kindNormal || kind == BertUnicode.kindChinese {
                        let lo = Int(table.starts[Int(v)]), hi = Int(table.starts[Int(v) + 1])
                        table.items.withUnsafeBufferPointer { all in
                            word.addPieces(UnsafeBufferPointer(rebasing: all[lo..<hi]), k, kind, &sink)
                        }
                    }
                } else {
                    scratch.removeAll(keepingCapacity: true)
                    kind = BertUnicode.compute(v, into: &scratch)
                    if kind == BertUnicode.kindNormal || kind == BertUnicode.kindChinese {
                        scratch.withUnsafeBufferPointer { word.addPieces($0, k, kind, &sink) }
                    }
                }
                if kind == BertUnicode.kindWhitespace {
                    word.flush(&sink); word.lastK = k
                }
                k += 1
            }
        }
        word.flush(&sink)
    }

    @inline(__always)
    static func matchSpecial(_ p: UnsafePointer<UInt8>, _ n: Int, _ specials: [[UInt8]]) -> Int? {
        outer: for (w, pattern) in specials.enumerated() where pattern.count <= n {
            for j in 1..<pattern.count where p[j] != pattern[j] { continue outer }
            return w
        }
        return nil
    }
}

/// Collects words as Strings (used by `basicTokenize` and the vocabulary trainer).
struct WordStringSink: BasicTokenSink {
    var words: [String] = []
    mutating func word(bytes: UnsafeBufferPointer<UInt8>, origin: UnsafeBufferPointer<Int32>, scalarCount: Int) {
        words.append(String(decoding: bytes, as: UTF8.self))
    }
    mutating func special(_ which: Int, start: Int, end: Int) {}
}
