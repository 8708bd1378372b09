// Recipe tables -> Codable option structs. Recipe keys are the command-line flag names
// (`seq-len`, `max-train-examples`); they map to the structs' camelCase properties. A table
// overrides the defaults: the defaults are encoded to JSON, the table merged in, the result
// decoded. A key is known when it survives the round trip (decode, encode again); unknown
// keys, keys the runner sets itself and values of the wrong type are errors naming the key.

import Foundation

enum KeyStyle {
    /// "max-seq-len" -> "maxSeqLen"
    static func camel(_ kebab: String) -> String {
        let parts = kebab.split(separator: "-", omittingEmptySubsequences: false)
        guard let first = parts.first else { return kebab }
        return String(first) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    /// "maxSeqLen" -> "max-seq-len"
    static func kebab(_ camel: String) -> String {
        var out = ""
        for c in camel {
            if c.isUppercase { out += "-" + c.lowercased() } else { out.append(c) }
        }
        return out
    }

    /// A recipe key must be lower-case kebab-case.
    static func isKebab(_ key: String) -> Bool {
        !key.isEmpty && key.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" } && !key.hasPrefix("-") && !key.hasSuffix("-")
    }
}

/// Where option keys come from, for errors that point at them: a recipe's lines, or the
/// command line's flags (`ArgumentSource`).
protocol OptionSource {
    func error(_ path: [String], _ message: String) -> RecipeError
    func keyError(_ path: [String], _ message: String) -> RecipeError
    func unknownKey(_ path: [String], known: [String]) -> RecipeError
}

extension RecipeSource: OptionSource {}

/// How a recipe table (or the command line's flags) maps onto an options struct.
struct OptionTable {
    /// camelCase key -> why the recipe may not set it (the runner does).
    var managed: [String: String] = [:]
    /// camelCase key -> path in the struct (flattened nested options, e.g. maxSeqLen -> features.maxSeqLen).
    var aliases: [String: [String]] = [:]
    /// Keys handled by the caller (removed before decoding), kebab-case.
    var extra: [String] = []

    struct Decoded<T> {
        var value: T
        var explicit: Set<String>      // camelCase keys the table set
    }

    /// Decode `defaults` overridden by `table` (kebab-case keys) found at `tablePath` in `source`.
    func decode<T: Codable>(_ defaults: T, table: [String: Any], tablePath: [String], source: some OptionSource,
                            layers: [(table: [String: Any], path: [String])] = []) throws -> Decoded<T> {
        let enc = JSONEncoder(); enc.outputFormatting = .sortedKeys
        var merged = try JSONSerialization.jsonObject(with: enc.encode(defaults)) as! [String: Any]
        let known = knownKeys(defaults, encoded: merged)
        // layers: earlier layers first (e.g. [pretrain] defaults, then the variant)
        var origin: [[String]: [String]] = [:]          // struct path -> recipe key path (for errors)
        var explicit = Set<String>()
        for layer in layers + [(table, tablePath)] {
            for key in layer.table.keys.sorted() where !extra.contains(key) {
                let value = layer.table[key]!
                let keyPath = layer.path + [key]
                guard KeyStyle.isKebab(key) else {
                    let k = KeyStyle.kebab(key.replacingOccurrences(of: "_", with: "-"))
                    throw source.error(keyPath, "unknown key '\(key)' \(RecipeSource.tableName(layer.path))"
                                       + (known.contains(k) ? " (did you mean '\(k)'? keys are the flag names)" : ""))
                }
                let camel = KeyStyle.camel(key)
                if let why = managed[camel] { throw source.keyError(keyPath, "is set by the recipe runner (\(why))") }
                let structPath = aliases[camel] ?? [camel]
                guard known.contains(key) || aliases[camel] != nil else { throw source.unknownKey(keyPath, known: known.sorted() + extra) }
                // "unset": an optional option's unset value (as `--flag unset` on the command line)
                let converted = value as? String == "unset" ? NSNull() : try convertKeys(value, keyPath: keyPath, source: source)
                OptionTable.set(&merged, structPath, converted)
                origin[structPath] = keyPath
                if layer.path == tablePath { explicit.insert(camel) }
            }
        }
        let data = try JSONSerialization.data(withJSONObject: merged)
        let value: T
        do {
            value = try JSONDecoder().decode(T.self, from: data)
        } catch let e as DecodingError {
            throw describe(e, origin: origin, fallback: tablePath, source: source)
        }
        // every key set must survive a round trip (catches unknown keys of nested tables)
        let round = try JSONSerialization.jsonObject(with: enc.encode(value)) as! [String: Any]
        for (structPath, keyPath) in origin.sorted(by: { $0.value.lexicographicallyPrecedes($1.value) }) {
            if let bad = OptionTable.missingLeaf(OptionTable.get(merged, structPath), OptionTable.get(round, structPath), keyPath) {
                throw source.unknownKey(bad, known: known.sorted())
            }
        }
        return Decoded(value: value, explicit: explicit)
    }

    /// Kebab-case names of the struct's keys (including nil optionals, through Mirror) and aliases.
    func knownKeys<T>(_ defaults: T, encoded: [String: Any]) -> Set<String> {
        var keys = Set(encoded.keys.map(KeyStyle.kebab))
        for c in Mirror(reflecting: defaults).children { if let l = c.label { keys.insert(KeyStyle.kebab(l)) } }
        for a in aliases.keys { keys.insert(KeyStyle.kebab(a)) }
        for m in managed.keys { keys.remove(KeyStyle.kebab(m)) }
        return keys
    }

    /// Nested tables: kebab-case keys -> camelCase.
    func convertKeys(_ v: Any, keyPath: [String], source: some OptionSource) throws -> Any {
        guard let d = v as? [String: Any] else { return v }
        var out: [String: Any] = [:]
        for (k, x) in d {
            guard KeyStyle.isKebab(k) else { throw source.unknownKey(keyPath + [k], known: []) }
            out[KeyStyle.camel(k)] = try convertKeys(x, keyPath: keyPath + [k], source: source)
        }
        return out
    }

    static func set(_ d: inout [String: Any], _ path: [String], _ v: Any) {
        guard let first = path.first else { return }
        if path.count == 1 {
            if let old = d[first] as? [String: Any], let new = v as? [String: Any] {
                var m = old
                for (k, x) in new { set(&m, [k], x) }
                d[first] = m
            } else {
                d[first] = v
            }
            return
        }
        var sub = d[first] as? [String: Any] ?? [:]
        set(&sub, Array(path.dropFirst()), v)
        d[first] = sub
    }

    static func get(_ d: Any?, _ path: [String]) -> Any? {
        var cur = d
        for p in path { cur = (cur as? [String: Any])?[p] }
        return cur
    }

    /// The recipe key path of the first value set in `sent` that did not come back in `back`.
    static func missingLeaf(_ sent: Any?, _ back: Any?, _ keyPath: [String]) -> [String]? {
        if sent is NSNull { return nil }              // an optional set to unset (`--limit all`)
        guard back != nil else { return keyPath }
        guard let s = sent as? [String: Any] else { return nil }
        let b = back as? [String: Any] ?? [:]
        for k in s.keys.sorted() {
            if let bad = missingLeaf(s[k], b[k], keyPath + [KeyStyle.kebab(k)]) { return bad }
        }
        return nil
    }

    func describe(_ e: DecodingError, origin: [[String]: [String]], fallback: [String], source: some OptionSource) -> RecipeError {
        let (path, what): ([CodingKey], String)
        switch e {
        case let .typeMismatch(t, c): (path, what) = (c.codingPath, "expected \(OptionTable.typeName(t))")
        case let .valueNotFound(t, c): (path, what) = (c.codingPath, "expected \(OptionTable.typeName(t))")
        case let .dataCorrupted(c): (path, what) = (c.codingPath, OptionTable.reason(c.debugDescription))
        case let .keyNotFound(k, c): (path, what) = (c.codingPath + [k], "missing")
        @unknown default: (path, what) = ([], "\(e)")
        }
        let structPath = path.map(\.stringValue).filter { Int($0) == nil }
        var p = structPath
        while !p.isEmpty, origin[p] == nil { p.removeLast() }
        let keyPath = origin[p].map { $0 + structPath.dropFirst(p.count).map(KeyStyle.kebab) }
            ?? fallback + structPath.map(KeyStyle.kebab)
        return source.keyError(keyPath, "bad value: \(what)")
    }

    static func typeName(_ t: Any.Type) -> String {
        switch t {
        case is Int.Type, is UInt64.Type, is Int32.Type: return "an integer"
        case is Float.Type, is Double.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        default:
            let s = "\(t)"
            if s.hasPrefix("Array") { return "an array" }
            if s.hasPrefix("Dictionary") { return "a table" }
            return s
        }
    }

    static func reason(_ s: String) -> String {
        if s.contains("does not fit") { return "expected an integer" }
        if s.contains("Cannot initialize"), let r = s.range(of: "invalid String value ") {
            return "'\(s[r.upperBound...].trimmingCharacters(in: CharacterSet(charactersIn: ". ")))' is not one of the allowed values"
        }
        return s
    }
}
