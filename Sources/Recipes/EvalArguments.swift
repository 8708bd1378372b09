// `droplab eval NAME CHECKPOINT --key value ...`: the command line of every registered
// evaluator, made from the evaluator's one declaration. The flags are the recipe keys (the
// options struct's properties in kebab-case, nested ones through the evaluator's aliases);
// each word is read as its property's type says (a list takes the words up to the next flag,
// commas also separate, and a repeated list flag adds to it; a repeated scalar flag: the last wins; a Bool is a switch, `--no-KEY` turns it off; an optional takes `unset`,
// or `all` for a count); then the same `OptionTable.decode` and `validate()` as a recipe
// table. The defaults are the struct's, and the help (`OptionHelp`) sits beside the struct.
// Unlike a recipe, nothing is filled in: the data root, seed and cache are the flags'.
//
// A run is a job directory, as in a recipe: <results>/<checkpoint name>/<NAME>/ with job.json
// (the resolved options, the checkpoint and its sha256), the evaluator's result.json and own
// files, and done.json (code version, machine, data digests). It is made in a sibling
// directory and moved into place when complete, so a failed run leaves the previous one intact.

import Checkpoint
import Evaluators
import Foundation
import Training

/// Errors about command-line flags: `--batch must be ...`, `unknown option '--x' for 'eval kn'`.
struct ArgumentSource: OptionSource {
    let command: String
    func error(_ path: [String], _ message: String) -> RecipeError { RecipeError("\(command): \(message)") }
    func keyError(_ path: [String], _ message: String) -> RecipeError { RecipeError("--\(path.last ?? "") \(message)") }
    func unknownKey(_ path: [String], known: [String]) -> RecipeError {
        let key = path.last ?? ""
        return RecipeError("unknown option '--\(key)' for '\(command)'"
                           + (Suggest.closest(key, among: known).map { " (did you mean '--\($0)'?)" } ?? ""))
    }
}

/// One flag: its struct path and what its words are read as.
struct ArgumentField {
    enum Scalar: String { case integer = "int", number, bool, string }
    var path: [String]          // camelCase path in the options struct
    var scalar: Scalar
    var list: Bool
    var optional: Bool
    var value: Any              // the default (Optional<...>.none for an unset optional)
    var help: String?

    /// From the Swift type name of a property: Optional<Array<Int>>, Float, Precision (a raw-value enum: a string).
    init(path: [String], value: Any, help: String?) {
        self.path = path; self.value = value; self.help = help
        var t = String(describing: type(of: value))
        optional = t.hasPrefix("Optional<"); if optional { t = String(t.dropFirst(9).dropLast()) }
        list = t.hasPrefix("Array<"); if list { t = String(t.dropFirst(6).dropLast()) }
        switch t {
        case "Int", "Int32", "Int64", "UInt64", "UInt32": scalar = .integer
        case "Float", "Double": scalar = .number
        case "Bool": scalar = .bool
        default: scalar = .string
        }
    }

    /// One word as this field's scalar; errors name the flag.
    func read(_ word: String, flag: String) throws -> Any {
        let bad = { RecipeError("--\(flag) expects \(self.scalar == .integer ? "an integer" : self.scalar == .number ? "a number" : "true or false"), got '\(word)'") }
        switch scalar {
        case .integer:
            if let v = Int64(word) { return NSNumber(value: v) }
            if let v = UInt64(word) { return NSNumber(value: v) }
            throw bad()
        case .number: guard let v = Double(word), v.isFinite else { throw bad() }; return NSNumber(value: v)
        case .bool: guard let v = Bool(word) else { throw bad() }; return v
        case .string: return word
        }
    }

    /// The default as help shows it.
    var defaultText: String {
        let m = Mirror(reflecting: value)
        if m.displayStyle == .optional { return m.children.first.map { ArgumentField.text($0.value) } ?? "unset" }
        return ArgumentField.text(value)
    }

    static func text(_ v: Any) -> String {
        if let a = v as? [Any] { return a.isEmpty ? "none" : a.map { text($0) }.joined(separator: ",") }
        if let r = v as? any RawRepresentable { return "\(r.rawValue)" }
        return "\(v)"
    }
}

/// The flags of an options struct: its leaf properties (nested structs only through aliases).
struct ArgumentFields {
    var fields: [String: ArgumentField] = [:]      // kebab-case flag -> field

    init<T>(_ defaults: T, aliases: [String: [String]]) {
        var paths: [String: [String]] = [:]          // camelCase flag -> struct path
        for c in Mirror(reflecting: defaults).children {
            guard let l = c.label else { continue }
            if Mirror(reflecting: c.value).displayStyle != .struct || c.value is String { paths[l] = [l] }
        }
        for (flag, p) in aliases { paths[flag] = p }
        for (flag, p) in paths {
            guard let (value, owner) = ArgumentFields.lookup(defaults, p) else { continue }
            let help = (type(of: owner) as? OptionHelp.Type)?.help[p.last!]
            fields[KeyStyle.kebab(flag)] = ArgumentField(path: p, value: value, help: help)
        }
    }

    /// The value at `path` and the struct that holds it.
    static func lookup(_ root: Any, _ path: [String]) -> (Any, Any)? {
        var owner = root
        for (i, key) in path.enumerated() {
            guard let child = Mirror(reflecting: owner).children.first(where: { $0.label == key })?.value else { return nil }
            if i == path.count - 1 { return (child, owner) }
            owner = child
        }
        return nil
    }

    /// `--key value ...` -> a table of kebab-case keys with typed values (lists accumulate).
    func table(_ args: [String], source: ArgumentSource) throws -> [String: Any] {
        var table: [String: Any] = [:]
        var i = 0
        func isFlag(_ w: String) -> Bool { w.hasPrefix("--") }
        var lastSwitch: String? = nil                // a word after a switch is most likely its mistyped value
        while i < args.count {
            let word = args[i]; i += 1
            guard isFlag(word), word.count > 2 else {
                throw RecipeError("\(source.command): unexpected argument '\(word)'"
                                  + (lastSwitch.map { " (--\($0) is a switch: it takes true, false\(fields[$0]!.optional ? " or unset" : "") or nothing)" } ?? ""))
            }
            lastSwitch = nil
            var name = String(word.dropFirst(2)), inline: String? = nil
            if let eq = name.firstIndex(of: "=") { inline = String(name[name.index(after: eq)...]); name = String(name[..<eq]) }
            var negated = false
            if fields[name] == nil, name.hasPrefix("no-"), fields[String(name.dropFirst(3))]?.scalar == .bool,
               fields[String(name.dropFirst(3))]?.list == false {
                name = String(name.dropFirst(3)); negated = true
            }
            guard let f = fields[name] else { throw source.unknownKey([name], known: fields.keys.sorted()) }
            var words: [String] = inline.map { [$0] } ?? []
            if f.list {
                while inline == nil, i < args.count, !isFlag(args[i]) { words.append(args[i]); i += 1 }
                let items = words.flatMap { $0.split(separator: ",").map(String.init) }
                if f.optional, items == ["unset"] { table[name] = NSNull(); continue }
                var list = table[name] as? [Any] ?? []
                for w in items { list.append(try f.read(w, flag: name)) }
                table[name] = list
                continue
            }
            if f.scalar == .bool {                     // a switch; an optional one also takes `unset`
                if negated { guard inline == nil else { throw RecipeError("--no-\(name) takes no value") }; table[name] = false; continue }
                if inline == nil, i < args.count, Bool(args[i]) != nil || (f.optional && args[i] == "unset") { words = [args[i]]; i += 1 }
                if f.optional, words.first == "unset" { table[name] = NSNull(); continue }
                table[name] = try words.first.map { try f.read($0, flag: name) } ?? true
                if words.isEmpty { lastSwitch = name }
                continue
            }
            if inline == nil {
                guard i < args.count, !isFlag(args[i]) else { throw RecipeError("--\(name) needs a value") }
                words = [args[i]]; i += 1
            }
            if f.optional, words[0] == "unset" || (f.scalar == .integer && words[0] == "all") { table[name] = NSNull(); continue }
            table[name] = try f.read(words[0], flag: name)
        }
        return table
    }

    /// The help rows, sorted by flag: (`--key <type>`, `text (default: value)`).
    var helpRows: [(flag: String, text: String)] {
        fields.keys.sorted().map { k in
            let f = fields[k]!
            let alternative = f.optional ? (f.scalar == .integer && !f.list ? "|all" : "|unset") : ""
            let kind = f.scalar == .bool && !f.optional && !f.list ? "" : " <\(f.scalar.rawValue)\(f.list ? " ..." : "")\(alternative)>"
            return ("--" + k + kind, (f.help ?? "") + " (default: \(f.defaultText))")
        }
    }
}

/// A command-line evaluation: parse, run as a job, write the job directory.
public enum EvalRun {
    public struct Outcome {
        public var directory: String
        public var report: JobReport
    }

    public static func run(_ e: AnyEvaluator, checkpoint: String, arguments: [String], results: String,
                           log: @escaping (String) -> Void) throws -> Outcome {
        let config = try e.commandLine(arguments)
        try AtomicFile.checkWritableDirectory(results, flag: "--results")
        guard FileManager.default.fileExists(atPath: checkpoint) else { throw OptionError(key: nil, "\(checkpoint): no such file or directory") }
        for d in try e.datasetsJSON(config) where !FileManager.default.fileExists(atPath: d.path) {
            throw OptionError(key: d.key, "\(d.path): no such file or directory")
        }
        let fm = FileManager.default
        let parent = Results.directory(for: checkpoint, root: results), dir = parent + "/" + e.name, partial = dir + ".partial"
        let created = [results, parent].filter { !fm.fileExists(atPath: $0) }      // removed again if the run fails
        try? fm.removeItem(atPath: partial)
        try fm.createDirectory(atPath: partial, withIntermediateDirectories: true)
        let started = Date()
        do {
            let object = try JSONSerialization.jsonObject(with: config) as! [String: Any]
            let cacheDir = (OptionTable.get(object, e.aliases["cacheDir"] ?? ["cacheDir"]) as? String).flatMap { $0.isEmpty ? nil : $0 }
                ?? "checkpoints/cache"
            let ctx = JobContext(directory: partial, cacheDir: cacheDir, log: log)
            let result = try e.runJSON(checkpoint, config, ctx)
            if Interrupt.requested { throw RecipeError("eval \(e.name): interrupted; nothing written") }
            try AtomicFile.write(result, to: partial + "/result.json")
            let digests = DataDigests()
            let record: [String: Any] = [
                "kind": e.name, "checkpoint": checkpoint, "checkpointSha256": try digests.digest(checkpoint), "config": object,
            ]
            try AtomicFile.write(Canonical.json(object: record, pretty: true), to: partial + "/job.json")
            var data: [String: String] = [:]
            for d in try e.datasetsJSON(config) where fm.fileExists(atPath: d.path) { data[d.path] = try digests.digest(d.path) }
            try AtomicFile.write(Canonical.json(DoneRecord.finished(job: e.name, kind: e.name, variant: nil, seed: nil, started: started,
                                                                    resumed: false, data: data, summary: [:]), pretty: true),
                                 to: partial + "/done.json")
        } catch {
            try? fm.removeItem(atPath: partial)
            for d in created.reversed() where (try? fm.contentsOfDirectory(atPath: d))?.isEmpty == true { try? fm.removeItem(atPath: d) }
            throw error
        }
        if fm.fileExists(atPath: dir) { try fm.removeItem(atPath: dir); log("replaced \(dir)") }
        try fm.moveItem(atPath: partial, toPath: dir)
        let report = try e.report(Data(contentsOf: URL(fileURLWithPath: dir + "/result.json")), dir)
        return Outcome(directory: dir, report: report)
    }

    /// The summary printed after a run: the evaluator's report rows (appendix rows left out).
    public static func summary(_ e: AnyEvaluator, _ o: Outcome) -> String {
        let rows = o.report.rows.filter { !$0.appendix }
        return (rows.map { "\(e.name): \($0.label): \(String(format: "%.4g", $0.value))" } + ["\(e.name): -> \(o.directory)"])
            .joined(separator: "\n")
    }
}
