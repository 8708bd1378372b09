// A recipe's TOML text: parsed with TOMLKit into plain Swift values (String, Int, Double,
// Bool, [Any], [String: Any]), plus a line index so that every error can name
// `file:line`, the key and its table (TOMLKit gives positions only for syntax errors).

import Foundation
import TOMLKit

public struct RecipeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Where keys and tables are in the text: "[pretrain]" headers, `key = value` lines,
/// `[[array]]` headers (indexed), dotted keys and quoted keys.
struct SourceIndex {
    private(set) var keyLines: [[String]: Int] = [:]     // full key path -> first line
    private(set) var tableLines: [[String]: Int] = [:]   // table path -> header line

    init(text: String) {
        var current: [String] = []
        var arrayCounts: [[String]: Int] = [:]
        var inMultiline: String? = nil                     // the closing delimiter of a multi-line string
        var bracketDepth = 0                               // inside a multi-line array
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNo = i + 1
            var line = Substring(raw)
            if let close = inMultiline {
                guard let r = line.range(of: close) else { continue }
                line = line[r.upperBound...]
                inMultiline = nil
            }
            let code = SourceIndex.stripComment(String(line))
            let trimmed = code.trimmingCharacters(in: .whitespaces)
            if bracketDepth > 0 {
                bracketDepth += SourceIndex.bracketBalance(trimmed)
                continue
            }
            if trimmed.isEmpty { continue }
            if trimmed.hasPrefix("[[") {
                let inner = trimmed.dropFirst(2).prefix { $0 != "]" }
                let path = SourceIndex.splitKey(String(inner))
                let n = arrayCounts[path, default: 0]
                arrayCounts[path] = n + 1
                current = path + [String(n)]
                if tableLines[current] == nil { tableLines[current] = lineNo }
                continue
            }
            if trimmed.hasPrefix("[") {
                let inner = trimmed.dropFirst().prefix { $0 != "]" }
                current = SourceIndex.splitKey(String(inner))
                if tableLines[current] == nil { tableLines[current] = lineNo }
                continue
            }
            guard let eq = SourceIndex.firstUnquoted("=", in: trimmed) else { continue }
            let key = SourceIndex.splitKey(String(trimmed[..<eq]))
            let full = current + key
            if keyLines[full] == nil { keyLines[full] = lineNo }
            let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            for delim in ["\"\"\"", "'''"] where value.hasPrefix(delim) {
                if value.dropFirst(3).range(of: delim) == nil { inMultiline = delim }
            }
            if value.hasPrefix("[") { bracketDepth = max(0, SourceIndex.bracketBalance(value)) }
        }
    }

    /// The line of a key, else of its nearest enclosing key or table (inline tables, arrays).
    func line(_ path: [String]) -> Int? {
        var p = path
        while !p.isEmpty {
            if let l = keyLines[p] ?? tableLines[p] { return l }
            p.removeLast()
        }
        return nil
    }

    func tableLine(_ path: [String]) -> Int? { tableLines[path] ?? keyLines[path] }

    static func stripComment(_ s: String) -> String {
        guard let i = firstUnquoted("#", in: s) else { return s }
        return String(s[..<i])
    }

    /// The first `ch` outside "..." and '...' strings.
    static func firstUnquoted(_ ch: Character, in s: String) -> String.Index? {
        var quote: Character? = nil
        var escaped = false
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if let q = quote {
                if escaped { escaped = false } else if c == "\\" && q == "\"" { escaped = true } else if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == ch {
                return i
            }
            i = s.index(after: i)
        }
        return nil
    }

    static func bracketBalance(_ s: String) -> Int {
        var depth = 0, quote: Character? = nil
        for c in s {
            if let q = quote { if c == q { quote = nil } } else if c == "\"" || c == "'" { quote = c }
            else if c == "[" || c == "{" { depth += 1 } else if c == "]" || c == "}" { depth -= 1 }
        }
        return depth
    }

    /// `a.b."c.d"` -> ["a", "b", "c.d"].
    static func splitKey(_ s: String) -> [String] {
        var parts: [String] = [], cur = "", quote: Character? = nil
        for c in s {
            if let q = quote {
                if c == q { quote = nil } else { cur.append(c) }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "." {
                parts.append(cur.trimmingCharacters(in: .whitespaces)); cur = ""
            } else {
                cur.append(c)
            }
        }
        parts.append(cur.trimmingCharacters(in: .whitespaces))
        return parts
    }
}

/// The recipe file: its text, parsed values and line index; errors name `file:line`.
public struct RecipeSource {
    public let path: String
    public let text: String
    let root: [String: Any]
    let index: SourceIndex

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
                throw RecipeError("\(path): is a directory, not a recipe file")
            }
            throw RecipeError("\(path): no such file")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw RecipeError("\(path): not UTF-8 text") }
        try self.init(path: path, text: text)
    }

    public init(path: String, text: String) throws {
        self.path = path
        self.text = text
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw RecipeError("\(path):\(e.source.begin.line): \(e.description)")
        }
        index = SourceIndex(text: text)
        var root: [String: Any] = [:]
        for (k, v) in table { root[k] = try RecipeSource.plain(v, path: [k], file: path, index: index) }
        self.root = root
    }

    static func plain(_ v: TOMLValueConvertible, path: [String], file: String, index: SourceIndex) throws -> Any {
        switch v.type {
        case .string: return v.string!
        case .int: return v.int!
        case .double:
            guard v.double!.isFinite else {
                throw RecipeError("\(file):\(index.line(path) ?? 1): key '\(path.last!)' \(RecipeSource.tableName(Array(path.dropLast()))): bad value: \(v.double!) is not a finite number")
            }
            return v.double!
        case .bool: return v.bool!
        case .array:
            return try v.array!.enumerated().map { try plain($0.element, path: path, file: file, index: index) }
        case .table:
            var out: [String: Any] = [:]
            for (k, x) in v.table! { out[k] = try plain(x, path: path + [k], file: file, index: index) }
            return out
        case .date, .time, .dateTime:
            throw RecipeError("\(file):\(index.line(path) ?? 1): key '\(path.last!)' \(RecipeSource.tableName(Array(path.dropLast()))): dates and times are not recipe values")
        }
    }

    /// "in [variants.nodrop]" / "at top level".
    static func tableName(_ table: [String]) -> String {
        table.isEmpty ? "at top level" : "in [\(table.joined(separator: "."))]"
    }

    /// `file:line: message` for a key path (or the nearest enclosing key/table).
    public func error(_ path: [String], _ message: String) -> RecipeError {
        RecipeError("\(self.path):\(index.line(path) ?? 1): \(message)")
    }

    /// An error about key `path.last` in table `path.dropLast()`.
    func keyError(_ path: [String], _ message: String) -> RecipeError {
        error(path, "key '\(path.last ?? "")' \(RecipeSource.tableName(Array(path.dropLast()))): \(message)")
    }

    func unknownKey(_ path: [String], known: [String]) -> RecipeError {
        let key = path.last ?? ""
        var msg = "unknown key '\(key)' \(RecipeSource.tableName(Array(path.dropLast())))"
        if let s = Suggest.closest(key, among: known) { msg += " (did you mean '\(s)'?)" }
        return error(path, msg)
    }

    /// Header line of a table, for ordering tables as written.
    func tableLine(_ path: [String]) -> Int { index.tableLine(path) ?? Int.max }
}

/// The closest of some names to a mistyped one (edit distance at most max(2, a third of its length)).
public enum Suggest {
    public static func closest(_ word: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, distance(word.lowercased(), $0.lowercased())) }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }
        guard let best = scored.first, best.1 <= max(2, word.count / 3) else { return nil }
        return best.0
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count), cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}
