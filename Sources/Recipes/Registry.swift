// The evaluator registry. An evaluator takes part in recipes and reports by conforming to
// `RecipeEvaluator` and being listed in `EvaluatorRegistry.all`: its name is the recipe's
// `[evaluators.<name>]` table, its Options struct (Codable, keys = the CLI flag names) is
// decoded from that table, `run` produces a Codable result stored as the job's
// result.json, and `rows` turns that JSON into report rows. The runner and the report only
// talk to the type-erased `AnyEvaluator`.

import Foundation
import Training

/// One number a job contributes to the report (one table row per `id`).
public struct MetricRow: Codable, Equatable, Sendable {
    public enum Better: String, Codable, Sendable { case higher, lower }
    public var id: String          // stable key, e.g. "blimp.accuracy"
    public var label: String       // row label, e.g. "BLiMP accuracy (%)"
    public var value: Double
    public var better: Better?
    public init(_ id: String, _ label: String, _ value: Double, better: Better? = nil) {
        self.id = id; self.label = label; self.value = value; self.better = better
    }
}

/// What an evaluator's options may take from the recipe when they are resolved.
public struct ResolveContext {
    public var dataDir: String?              // the recipe's data-dir (nil: the default data root)
    public var seed: UInt64                  // the job's seed
    public var pretrain: PretrainOptions     // the pretraining the evaluator follows
    public var synthetic: String? = nil      // the recipe's [synthetic] corpus directory (probes, CounterFact, corpus)
}

/// What a running job gets.
public struct JobContext {
    public var directory: String             // the job directory (outputs go here)
    public var cacheDir: String              // shared cache (token shards, vocabularies)
    public var seed: UInt64
    public var pretrain: PretrainOptions
    public var log: (String) -> Void
}

/// A dataset an evaluator reads: checked before any job starts, hashed for provenance.
public struct DatasetRef: Sendable {
    public var key: String?                  // the option naming it (kebab-case), nil: the data root default
    public var path: String
    public var directory: Bool
    public var suffix: String? = nil         // a directory must hold files ending so
    public init(key: String?, path: String, directory: Bool = false, suffix: String? = nil) {
        self.key = key; self.path = path; self.directory = directory; self.suffix = suffix
    }
}

public protocol RecipeEvaluator {
    /// The command's options (the same struct as its CLI flags): `validate()` is the one check.
    associatedtype Options: CommandOptions
    associatedtype Result: Codable
    /// `[evaluators.<name>]` in recipes, the job kind, the result's name.
    static var name: String { get }
    static var defaults: Options { get }
    /// camelCase option -> why a recipe may not set it (the runner fills it in).
    static var managedKeys: [String: String] { get }
    /// camelCase flattened key -> path in Options (e.g. maxSeqLen -> features.maxSeqLen).
    static var aliases: [String: [String]] { get }
    /// Fill in what comes from the recipe; `explicit` are the camelCase keys the recipe set.
    static func resolve(_ o: inout Options, explicit: Set<String>, context: ResolveContext)
    /// The data files or directories the evaluator reads.
    static func datasets(_ o: Options) -> [DatasetRef]
    static func run(checkpoint: String, options: Options, context: JobContext) throws -> Result
    static func rows(_ result: Result) -> [MetricRow]
}

public extension RecipeEvaluator {
    static var managedKeys: [String: String] { [:] }
    static var aliases: [String: [String]] { [:] }
}

/// A registered evaluator with its types erased: options travel as canonical JSON.
public struct AnyEvaluator {
    public let name: String
    let aliases: [String: [String]]
    let decodeTable: (_ table: [String: Any], _ path: [String], _ source: RecipeSource, _ context: ResolveContext) throws -> Data
    let validateJSON: (Data) throws -> Void
    let datasetsJSON: (Data) throws -> [DatasetRef]
    let runJSON: (_ checkpoint: String, _ options: Data, _ context: JobContext) throws -> Data
    public let rows: (_ resultJSON: Data) throws -> [MetricRow]

    /// The recipe key path of an option key (a flattened key may be written nested).
    func keyPath(_ key: String, table: [String], source: RecipeSource) -> [String] {
        let direct = table + [key]
        if source.index.keyLines[direct] != nil { return direct }
        if let a = aliases[KeyStyle.camel(key)] { return table + a.map(KeyStyle.kebab) }
        return direct
    }

    public init<E: RecipeEvaluator>(_ e: E.Type) {
        name = E.name
        aliases = E.aliases
        decodeTable = { table, path, source, context in
            let spec = OptionTable(managed: E.managedKeys, aliases: E.aliases)
            var d = try spec.decode(E.defaults, table: table, tablePath: path, source: source)
            E.resolve(&d.value, explicit: d.explicit, context: context)
            return try Canonical.json(d.value)
        }
        validateJSON = { try JSONDecoder().decode(E.Options.self, from: $0).validate() }
        datasetsJSON = { E.datasets(try JSONDecoder().decode(E.Options.self, from: $0)) }
        runJSON = { checkpoint, options, context in
            let o = try JSONDecoder().decode(E.Options.self, from: options)
            return try Canonical.json(E.run(checkpoint: checkpoint, options: o, context: context), pretty: true)
        }
        rows = { E.rows(try JSONDecoder().decode(E.Result.self, from: $0)) }
    }
}

public enum EvaluatorRegistry {
    /// Every evaluator recipes can name. Add new evaluators here (and nowhere else).
    public static let all: [AnyEvaluator] = [
        AnyEvaluator(MLMRecipeEvaluator.self),
        AnyEvaluator(BlimpRecipeEvaluator.self),
        AnyEvaluator(SquadRecipeEvaluator.self),
        AnyEvaluator(ConsistencyRecipeEvaluator.self),
        AnyEvaluator(IGRecipeEvaluator.self),
        AnyEvaluator(KNRecipeEvaluator.self),
        AnyEvaluator(LensRecipeEvaluator.self),
        AnyEvaluator(TraceRecipeEvaluator.self),
        AnyEvaluator(InterchangeRecipeEvaluator.self),
        AnyEvaluator(RomeRecipeEvaluator.self),
        AnyEvaluator(MemitRecipeEvaluator.self),
        AnyEvaluator(MendRecipeEvaluator.self),
        AnyEvaluator(BMaskRecipeEvaluator.self),
        AnyEvaluator(FinetuneRecipeEvaluator.self),
        AnyEvaluator(LoRARecipeEvaluator.self),
        AnyEvaluator(ReFTRecipeEvaluator.self),
    ]

    public static func named(_ name: String) -> AnyEvaluator? { all.first { $0.name == name } }
    public static var names: [String] { all.map(\.name) }
}

enum Canonical {
    /// Sorted-key JSON: the same value always gives the same bytes (hashes, job.json).
    static func json<T: Encodable>(_ v: T, pretty: Bool = false) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try enc.encode(v)
    }

    /// Re-serialize JSON with sorted keys.
    static func json(object: Any, pretty: Bool = false) throws -> Data {
        try JSONSerialization.data(withJSONObject: object, options: pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                                                                           : [.sortedKeys, .withoutEscapingSlashes])
    }
}
