// A recipe (recipes/<name>.toml) and its resolution into a graph of jobs: one pretraining
// per (variant, seed), each followed by the recipe's evaluators. Every job is named by a
// hash of its identity: the resolved configuration but for the options that only change what
// is logged (`Recipe.loggingKeys`), the content digests of the datasets it reads, and for an
// evaluator the hash of its pretraining. So a changed setting or dataset is a new job and an
// unchanged one is found done.
//
//     title = "..."                  # report heading (default: the file name)
//     question = "..."               # the question the report opens with (default: the title)
//     description = "..."            # a paragraph for the report
//     seeds = [0, 1, 2]
//     baseline = "nodrop"            # the variant others are tested against (default: the first)
//     data-dir = "../shared/data"    # data root (default: $DROPLAB_DATA, ../shared/data, ./data)
//     [pretrain]                     # `droplab pretrain` flags, shared by all variants
//     [variants.<id>]                # label = "...", plus flag overrides; early-dropout-fraction = 0.15
//     [evaluators.<name>]            # the evaluator's flags (see EvaluatorRegistry)
//
// Everything is checked (keys, values, presets, datasets) before any job starts; errors name
// `file:line`, the key and its table.

import BERT
import Evaluators
import Foundation
import Text
import Training

public struct Variant {
    public var id: String
    public var label: String
    public var options: PretrainOptions        // seed, out and cache-dir are filled in per job
    public var settings: [(String, String)]    // the variant's own keys as written (for the report)
}

public struct EvaluatorUse {
    public var evaluator: AnyEvaluator
    var table: [String: Any]
    public var settings: [(String, String)]
}

public struct Job {
    public var kind: String                    // "pretrain" or an evaluator name
    public var variant: String                 // variant id
    public var seed: UInt64
    public var hash: String                    // sha256 of the job's identity (Recipe.hash)
    public var legacyHash: String              // the hash before data digests and logging keys (Recipe.legacyHash)
    public var config: Data                    // canonical JSON of the resolved options
    public var data: [String]                  // the datasets it reads (files or directories)
    public var pretrain: PretrainOptions       // the pretraining (this job's, or the one it follows)
    public var dependsOn: Int?                 // index of the pretraining job
    public var dirName: String { "\(kind)-\(hash.prefix(12))" }
    public var legacyDirName: String { "\(kind)-\(legacyHash.prefix(12))" }
    public var name: String { "\(kind)/\(variant)/seed\(seed)" }
}

public struct Recipe {
    public static let pretrainKind = "pretrain"
    static let topLevelKeys = ["title", "question", "description", "seeds", "baseline", "data-dir", "pretrain", "variants", "evaluators"]
    /// Keys of [pretrain] / [variants.x] that are not `droplab pretrain` flags.
    static let variantExtraKeys = ["label", "early-dropout-fraction"]
    static let pretrainTable = OptionTable(
        managed: ["seed": "the recipe's seeds", "out": "the job directory", "cacheDir": "the runner's cache",
                  "dataDir": "the recipe's top-level data-dir",
                  "initSeed": "the recipe's seeds: a job's init, data and dropout seeds are its seed",
                  "dataSeed": "the recipe's seeds: a job's init, data and dropout seeds are its seed",
                  "dropoutSeed": "the recipe's seeds: a job's init, data and dropout seeds are its seed"],
        extra: variantExtraKeys)

    public let source: RecipeSource
    public let name: String
    public var title: String
    public var question: String?
    public var description: String?
    public var seeds: [UInt64] = []
    public var dataDir: String?
    public var variants: [Variant] = []
    public var baseline: String
    public var evaluators: [EvaluatorUse] = []
    public private(set) var jobs: [Job] = []
    /// The digests of the datasets the jobs read (shared with the runner, which records them).
    public let digests: DataDigests

    /// Read and check a recipe and resolve its jobs; nothing is written. `digests` may carry a
    /// cache of earlier digests (see DataDigests).
    public init(path: String, digests: DataDigests = DataDigests()) throws {
        try self.init(source: RecipeSource(path: path), digests: digests)
    }

    public init(source: RecipeSource, digests: DataDigests = DataDigests()) throws {
        self.source = source
        self.digests = digests
        name = URL(fileURLWithPath: source.path).deletingPathExtension().lastPathComponent
        let root = source.root
        for k in root.keys.sorted() where !Recipe.topLevelKeys.contains(k) {
            throw source.unknownKey([k], known: Recipe.topLevelKeys)
        }
        title = try Recipe.string(root, "title", source) ?? "Recipe \(name)"
        question = try Recipe.string(root, "question", source)
        description = try Recipe.string(root, "description", source)
        dataDir = try Recipe.string(root, "data-dir", source)
        baseline = ""

        // seeds
        guard let rawSeeds = root["seeds"] else { throw source.error([], "missing key 'seeds' at top level (e.g. seeds = [0, 1, 2])") }
        guard let seedList = rawSeeds as? [Any], !seedList.isEmpty else {
            throw source.keyError(["seeds"], "bad value: expected a non-empty array of integers")
        }
        for s in seedList {
            guard let i = s as? Int, i >= 0 else { throw source.keyError(["seeds"], "bad value: seeds are non-negative integers, got \(s)") }
            guard !seeds.contains(UInt64(i)) else { throw source.keyError(["seeds"], "bad value: seed \(i) appears twice") }
            seeds.append(UInt64(i))
        }

        if let d = dataDir {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: d, isDirectory: &isDir), isDir.boolValue else {
                throw source.keyError(["data-dir"], "missing dataset: \(d) is not a directory")
            }
        }

        // [pretrain] and [variants.*]
        let base = try Recipe.table(root, ["pretrain"], source) ?? [:]
        guard let vt = try Recipe.table(root, ["variants"], source), !vt.isEmpty else {
            throw source.error(["variants"], "no variants: add at least one [variants.<id>] table (e.g. label = \"No dropout\", dropout = 0.0)")
        }
        let ids = vt.keys.sorted { (source.tableLine(["variants", $0]), $0) < (source.tableLine(["variants", $1]), $1) }
        for id in ids {
            guard let t = vt[id] as? [String: Any] else { throw source.keyError(["variants", id], "bad value: expected a table") }
            variants.append(try resolveVariant(id: id, table: t, base: base))
        }
        let b = try Recipe.string(root, "baseline", source) ?? ids[0]
        guard ids.contains(b) else {
            throw source.keyError(["baseline"], "bad value: no variant '\(b)' (variants: \(ids.joined(separator: ", ")))")
        }
        baseline = b

        // [evaluators.*]
        let et = try Recipe.table(root, ["evaluators"], source) ?? [:]
        let names = et.keys.sorted { (source.tableLine(["evaluators", $0]), $0) < (source.tableLine(["evaluators", $1]), $1) }
        for n in names {
            guard let e = EvaluatorRegistry.named(n) else {
                var msg = "unknown evaluator '\(n)' in [evaluators] (known: \(EvaluatorRegistry.names.joined(separator: ", ")))"
                if let s = Suggest.closest(n, among: EvaluatorRegistry.names) { msg += "; did you mean '\(s)'?" }
                throw source.error(["evaluators", n], msg)
            }
            guard let t = et[n] as? [String: Any] else { throw source.keyError(["evaluators", n], "bad value: expected a table") }
            evaluators.append(EvaluatorUse(evaluator: e, table: t, settings: Recipe.settings(t)))
        }
        try checkPretrainData()
        jobs = try resolveJobs()
    }

    // MARK: variants

    func resolveVariant(id: String, table: [String: Any], base: [String: Any]) throws -> Variant {
        let path = ["variants", id]
        var o = PretrainOptions()
        o.dataDir = dataDir
        let decoded = try Recipe.pretrainTable.decode(o, table: table, tablePath: path, source: source,
                                                      layers: [(base, ["pretrain"])])
        o = decoded.value
        // where a key was set: the variant, else [pretrain]
        func keyPath(_ key: String) -> [String] { table[key] != nil || base[key] == nil ? path + [key] : ["pretrain", key] }
        let label = try Recipe.string(table, "label", source, path: path) ?? id
        if o.preset.isEmpty || (try? BertConfig(preset: o.preset, vocabSize: 100)) == nil {
            throw source.keyError(keyPath("preset"), "unknown preset '\(o.preset)' (known: \(BertConfig.presets.map(\.name).joined(separator: ", ")))")
        }
        let fractionValue = table["early-dropout-fraction"] ?? base["early-dropout-fraction"]
        if let f = fractionValue {
            let kp = keyPath("early-dropout-fraction")
            guard let x = (f as? Double) ?? (f as? Int).map(Double.init), x > 0, x <= 1 else {
                throw source.keyError(kp, "bad value: expected a fraction of the steps in (0, 1], got \(f)")
            }
            guard o.earlyDropoutSteps == nil else {
                throw source.keyError(kp, "set either early-dropout-fraction or early-dropout-steps, not both")
            }
            let steps = o.tokens / max(1, o.batch * o.seqLen * o.accumulation)
            o.earlyDropoutSteps = max(1, Int((x * Double(steps)).rounded()))
        }
        do {
            try o.validate()
        } catch let e as OptionError {
            throw source.keyError(keyPath(e.key ?? "preset"), "bad value: \(e)")
        }
        return Variant(id: id, label: label, options: o, settings: Recipe.settings(table))
    }

    /// Corpus files and vocabulary of every variant exist.
    func checkPretrainData() throws {
        for v in variants {
            let table = source.root["variants"].flatMap { ($0 as? [String: Any])?[v.id] as? [String: Any] } ?? [:]
            let base = source.root["pretrain"] as? [String: Any] ?? [:]
            func keyPath(_ key: String) -> [String] {
                if table[key] != nil { return ["variants", v.id, key] }
                if base[key] != nil { return ["pretrain", key] }
                return dataDir != nil ? ["data-dir"] : ["pretrain"]
            }
            do {
                _ = try Pretrain.corpusFiles(v.options)
            } catch {
                let kp = keyPath("corpus")
                throw kp.count == 1 && kp[0] == "pretrain"
                    ? source.error(kp, "[pretrain]: missing dataset: \(error)")
                    : source.keyError(kp, "missing dataset: \(error)")
            }
            if let voc = v.options.vocab, !FileManager.default.fileExists(atPath: voc) {
                throw source.keyError(keyPath("vocab"), "missing dataset: vocabulary \(voc) does not exist")
            }
        }
    }

    // MARK: jobs

    func resolveJobs() throws -> [Job] {
        var jobs: [Job] = []
        var seen: [String: String] = [:]        // hash -> job name (two variants resolving alike)
        for seed in seeds {
            for v in variants {
                var o = v.options
                o.seed = seed
                var hashed = o
                hashed.out = ""; hashed.cacheDir = ""
                let config = try Canonical.json(hashed)
                let data = (try Pretrain.corpusFiles(o)) + (o.vocab.map { [$0] } ?? [])
                let hash = try Recipe.hash(kind: Recipe.pretrainKind, config: config, data: data, digests: digests, parent: nil)
                let legacy = Recipe.legacyHash(kind: Recipe.pretrainKind, config: config, parent: nil)
                let job = Job(kind: Recipe.pretrainKind, variant: v.id, seed: seed, hash: hash, legacyHash: legacy, config: config,
                              data: data, pretrain: o, dependsOn: nil)
                if let other = seen[hash] {
                    throw source.error(["variants", v.id], "variant '\(v.id)' resolves to the same pretraining as \(other): give it a different setting")
                }
                seen[hash] = job.name
                let parent = jobs.count
                jobs.append(job)
                for e in evaluators {
                    let path = ["evaluators", e.evaluator.name]
                    let ctx = ResolveContext(dataDir: dataDir, seed: seed, pretrain: o)
                    let config = try e.evaluator.decodeTable(e.table, path, source, ctx)
                    do {
                        try e.evaluator.validateJSON(config)
                    } catch let err as OptionError {
                        throw err.key.map { source.keyError(e.evaluator.keyPath($0, table: path, source: source), "bad value: \(err.description)") }
                            ?? source.error(path, "[\(path.joined(separator: "."))]: \(err.description)")
                    }
                    let datasets = try e.evaluator.datasetsJSON(config)
                    for d in datasets { try checkDataset(d, table: path) }
                    let h = try Recipe.hash(kind: e.evaluator.name, config: config, data: datasets.map(\.path), digests: digests, parent: hash)
                    let l = Recipe.legacyHash(kind: e.evaluator.name, config: config, parent: legacy)
                    jobs.append(Job(kind: e.evaluator.name, variant: v.id, seed: seed, hash: h, legacyHash: l, config: config,
                                    data: datasets.map(\.path), pretrain: o, dependsOn: parent))
                }
            }
        }
        return jobs
    }

    func checkDataset(_ d: DatasetRef, table: [String]) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        let exists = fm.fileExists(atPath: d.path, isDirectory: &isDir)
        var problem: String? = nil
        if !exists {
            problem = "\(d.path) does not exist"
        } else if d.directory != isDir.boolValue {
            problem = "\(d.path) is \(isDir.boolValue ? "a directory" : "not a directory")"
        } else if let suffix = d.suffix,
                  ((try? fm.contentsOfDirectory(atPath: d.path)) ?? []).allSatisfy({ !$0.hasSuffix(suffix) }) {
            problem = "\(d.path) holds no \(suffix) files"
        }
        guard let problem else { return }
        if let k = d.key { throw source.keyError(table + [k], "missing dataset: \(problem)") }
        if dataDir != nil { throw source.keyError(["data-dir"], "missing dataset for [\(table.joined(separator: "."))]: \(problem)") }
        throw source.keyError(table, "missing dataset: \(problem) (the data root is data-dir, else $DROPLAB_DATA, ../shared/data or ./data)")
    }

    /// Options that change only what is logged or written beside the results, never a result,
    /// so they are not part of a job's identity: `log-every`, `save-every`, `export-batches`
    /// (init.h5 and batches.h5 for tools, drawn from a copy of the data stream), and
    /// `eval-every`: validation between steps reads the weights and changes nothing (dropout
    /// masks come from (seed, step, site), the validation batches are fixed), and every run ends
    /// with a validation line, so it changes only how many points the validation curve has.
    static let loggingKeys = ["logEvery", "saveEvery", "evalEvery", "exportBatches"]

    /// A job's hash: its kind, its configuration without `loggingKeys`, the digests of the
    /// datasets it reads and its pretraining's hash.
    static func hash(kind: String, config: Data, data: [String], digests: DataDigests, parent: String?) throws -> String {
        guard var o = try JSONSerialization.jsonObject(with: config) as? [String: Any] else { throw RecipeError("job configuration is not a JSON object") }
        for k in loggingKeys { o.removeValue(forKey: k) }
        var d = Data("droplab-recipe-job-v2\u{0}\(kind)\u{0}".utf8)
        d.append(try Canonical.json(object: o))
        for path in data { d.append(Data("\u{0}\(path)=\(try digests.digest(path))".utf8)) }
        if let parent { d.append(Data("\u{0}\(parent)".utf8)) }
        return SHA256.hex(d)
    }

    /// The hash of the first scheme (the whole configuration, no data digests): the directory
    /// name a finished job may still have (RecipeRunner adopts it).
    static func legacyHash(kind: String, config: Data, parent: String?) -> String {
        var d = Data("droplab-recipe-job-v1\u{0}\(kind)\u{0}".utf8)
        d.append(config)
        if let parent { d.append(Data("\u{0}\(parent)".utf8)) }
        return SHA256.hex(d)
    }

    /// sha256 of the recipe file's bytes.
    public var fileHash: String { SHA256.hex(Data(source.text.utf8)) }

    public func variant(_ id: String) -> Variant? { variants.first { $0.id == id } }

    // MARK: helpers

    static func string(_ t: [String: Any], _ key: String, _ source: RecipeSource, path: [String] = []) throws -> String? {
        guard let v = t[key] else { return nil }
        guard let s = v as? String else { throw source.keyError(path + [key], "bad value: expected a string") }
        return s
    }

    static func table(_ t: [String: Any], _ path: [String], _ source: RecipeSource) throws -> [String: Any]? {
        guard let v = t[path.last!] else { return nil }
        guard let d = v as? [String: Any] else { throw source.keyError(path, "bad value: expected a table ([\(path.joined(separator: "."))])") }
        return d
    }

    /// A table's keys and values as written (sorted by key; `label` left out), for the report.
    static func settings(_ t: [String: Any]) -> [(String, String)] {
        t.keys.sorted().filter { $0 != "label" }.map { ($0, render(t[$0]!)) }
    }

    static func render(_ v: Any) -> String {
        switch v {
        case let s as String: return "\"\(s)\""
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return String(i)
        case let d as Double: return d == d.rounded() && abs(d) < 1e15 ? String(format: "%.1f", d) : "\(d)"
        case let a as [Any]: return "[" + a.map(render).joined(separator: ", ") + "]"
        case let t as [String: Any]: return "{ " + t.keys.sorted().map { "\($0) = \(render(t[$0]!))" }.joined(separator: ", ") + " }"
        default: return "\(v)"
        }
    }
}
