// Corpus streaming: plain-text or gzip files, or directories of them, read line by line
// with bounded memory. Documents are WikiExtractor `<doc ...>` ... `</doc>` blocks when the
// file has them, otherwise runs of non-empty lines separated by blank lines.

import CZlib
import Foundation

public struct CorpusError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

public enum Corpus {
    /// Every readable corpus file under `paths` (directories recursively, sorted), or an
    /// error naming the path that is missing or empty.
    public static func files(_ paths: [String]) throws -> [String] {
        guard !paths.isEmpty else { throw CorpusError("no corpus given") }
        var out: [String] = []
        let fm = FileManager.default
        for p in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: p, isDirectory: &isDir) else { throw CorpusError("\(p): no such file or directory") }
            if isDir.boolValue {
                let items = (fm.enumerator(atPath: p)?.allObjects as? [String] ?? []).sorted()
                let found = items.map { p + "/" + $0 }.filter { f in
                    var d: ObjCBool = false
                    return fm.fileExists(atPath: f, isDirectory: &d) && !d.boolValue && !(f as NSString).lastPathComponent.hasPrefix(".")
                }
                guard !found.isEmpty else { throw CorpusError("\(p): directory has no files") }
                out += found
            } else {
                out.append(p)
            }
        }
        for f in out {
            let size = (try? fm.attributesOfItem(atPath: f)[.size] as? Int) ?? 0
            guard size > 0 else { throw CorpusError("\(f): empty corpus file") }
            guard fm.isReadableFile(atPath: f) else { throw CorpusError("\(f): not readable") }
        }
        return out
    }

    /// Call `body` with each line of `path` (gzip or plain; zlib reads both), without the
    /// newline. Lines are decoded as UTF-8 (invalid bytes are replaced).
    public static func forEachLine(_ path: String, _ body: (String) throws -> Void) throws {
        guard let gz = gzopen(path, "rb") else { throw CorpusError("\(path): cannot open") }
        defer { gzclose(gz) }
        gzbuffer(gz, 1 << 18)
        let chunk = 1 << 18
        var buf = [UInt8](repeating: 0, count: chunk)
        var pending: [UInt8] = []
        while true {
            let n = buf.withUnsafeMutableBytes { Int(gzread(gz, $0.baseAddress, UInt32(chunk))) }
            if n < 0 {
                var err: Int32 = 0
                throw CorpusError("\(path): read error (\(String(cString: gzerror(gz, &err))))")
            }
            if n == 0 { break }
            var start = 0
            for i in 0..<n where buf[i] == 0x0A {
                if pending.isEmpty {
                    try body(String(decoding: buf[start..<i], as: UTF8.self))
                } else {
                    pending += buf[start..<i]
                    try body(String(decoding: pending, as: UTF8.self))
                    pending.removeAll(keepingCapacity: true)
                }
                start = i + 1
            }
            pending += buf[start..<n]
        }
        if !pending.isEmpty { try body(String(decoding: pending, as: UTF8.self)) }
    }

    /// `data` in gzip format (deflate level 9, no file name, modification time 0), so the same
    /// bytes always give the same file.
    public static func gzip(_ data: Data) throws -> Data {
        var z = z_stream()
        // window bits 15 + 16: a gzip wrapper instead of zlib's
        guard deflateInit2_(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw CorpusError("gzip: deflateInit2 failed")
        }
        defer { deflateEnd(&z) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&z, UInt(data.count))))
        var input = [UInt8](data)
        let status = input.withUnsafeMutableBufferPointer { i in
            out.withUnsafeMutableBufferPointer { o -> Int32 in
                z.next_in = i.baseAddress; z.avail_in = UInt32(i.count)
                z.next_out = o.baseAddress; z.avail_out = UInt32(o.count)
                return deflate(&z, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw CorpusError("gzip: deflate failed (\(status))") }
        return Data(out.prefix(Int(z.total_out)))
    }

    /// Call `body` with each document's text (lines joined by "\n").
    public static func forEachDocument(_ path: String, _ body: (String) throws -> Void) throws {
        var lines: [String] = []
        var inDoc = false, sawDocTag = false
        func flush() throws {
            if !lines.isEmpty { try body(lines.joined(separator: "\n")) }
            lines.removeAll(keepingCapacity: true)
        }
        try forEachLine(path) { line in
            if line.hasPrefix("<doc ") || line == "<doc>" {
                try flush(); inDoc = true; sawDocTag = true
            } else if line == "</doc>" {
                try flush(); inDoc = false
            } else if line.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) {
                if !sawDocTag { try flush() }   // blank-line separated plain text
            } else if inDoc || !sawDocTag {
                lines.append(line)
            }
        }
        try flush()
    }
}

/// FNV-1a 64-bit over bytes: stable content hashes for cache keys and document splits.
public struct StableHash {
    public private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    public init() {}
    public mutating func add<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        for b in bytes { value = (value ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    }
    public mutating func add(_ s: String) { add(s.utf8); add([0]) }
    public static func of(_ s: String) -> UInt64 { var h = StableHash(); h.add(s); return h.value }
    public var hex: String { String(format: "%016llx", value) }
}
