// The evaluator registry. An evaluator takes part in recipes and reports by conforming to
// `RecipeEvaluator` and being listed in `EvaluatorRegistry.all`: its name is the recipe's
// `[evaluators.<name>]` table, its Options struct (Codable, keys = the CLI flag names) is
// decoded from that table, `run` produces a Codable result stored as the job's
// result.json, and `rows` turns that JSON into report rows. The runner and the report only
// talk to the type-erased `AnyEvaluator`.

import Evaluators
import Foundation
import Training

/// One number a job contributes to the report (one table row per `id`).
public struct MetricRow: Codable, Equatable, Sendable {
    public enum Better: String, Codable, Sendable { case higher, lower }
    /// The row's value per concept or probe (`kind`), whose mean over units is `value`: the
    /// report pairs two variants' units within a seed instead of their means.
    public struct Units: Codable, Equatable, Sendable {
        public var kind: String                  // "concept", "probe", "fact"
        public var values: [String: Double]
        /// Units from (key, value) pairs in order; a key seen again gets "#2", "#3" (probes with
        /// the same prompt and target stay distinct, and match across variants by occurrence).
        public init(kind: String, _ pairs: [(String, Double)]) {
            self.kind = kind
            var seen: [String: Int] = [:], values: [String: Double] = [:]
            for (k, v) in pairs {
                let n = seen[k, default: 0] + 1
                seen[k] = n
                values[n == 1 ? k : "\(k) #\(n)"] = v
            }
            self.values = values
        }
    }
    public var id: String          // stable key, e.g. "blimp.accuracy"
    public var label: String       // row label, e.g. "BLiMP accuracy (%)"
    public var value: Double
    public var better: Better?
    /// A fact about the machine or the run (throughput, a count), not a hypothesis: its mean
    /// is shown, it is never tested.
    public var descriptive = false
    /// In the evaluator's appendix table (e.g. BLiMP per paradigm) instead of its part's table.
    public var appendix = false
    public var units: Units? = nil
    /// The range every value of the metric lies in (a share 0...100, a probability, a
    /// probability difference), nil: unbounded. The report cuts intervals at it.
    public var bounds: ClosedRange<Double>? = nil
    public init(_ id: String, _ label: String, _ value: Double, better: Better? = nil, descriptive: Bool = false, appendix: Bool = false,
                bounds: ClosedRange<Double>? = nil) {
        self.id = id; self.label = label; self.value = value; self.better = better
        self.descriptive = descriptive; self.appendix = appendix; self.bounds = bounds
    }

    public static let percentRange = 0.0...100.0
    /// A share given as a fraction in [0, 1], shown in percent.
    public static func percent(_ id: String, _ label: String, _ fraction: Double, better: Better? = nil, descriptive: Bool = false,
                               appendix: Bool = false) -> MetricRow {
        MetricRow(id, label, 100 * fraction, better: better, descriptive: descriptive, appendix: appendix, bounds: percentRange)
    }
}

/// The study's parts: where an evaluator's table goes in the report.
public enum ReportPart: Int, CaseIterable, Sendable {
    case language = 1       // pretraining loss, BLiMP, SQuAD
    case knowledge = 3      // knowledge neurons, IG, binary masks
    case editing = 4        // consistency, finetune/MEND/LoRA/LoReFT edits
    case mechanisms = 5     // causal tracing, ROME/MEMIT, logit lens, interchange

    public var title: String {
        switch self {
        case .language: return "Part 1: Pretraining and language"
        case .knowledge: return "Part 3: Where facts are stored"
        case .editing: return "Part 4: Consistency and editing"
        case .mechanisms: return "Mechanisms: tracing and editing facts"
        }
    }

    public var question: String {
        switch self {
        case .language: return "How well does each variant learn the language: its held-out masked-LM loss and perplexity, its grammatical judgements (BLiMP) and how well it finetunes on SQuAD?"
        case .knowledge: return "Where do the variants store facts: how many knowledge neurons a probe and a concept have, how they cluster, what suppressing and amplifying them does, what integrated gradients attribute, and how much of the network a binary mask keeps to hold a concept?"
        case .editing: return "How consistent are the variants across paraphrases, and how well can their facts be edited by finetuning, MEND, LoRA and LoReFT (and at what rank)?"
        case .mechanisms: return "Where does a fact flow through the network (causal tracing, logit lens, interchange), and how well do ROME and MEMIT edit it?"
        }
    }
}

/// A figure an evaluator contributes: a curve (one line per job: the variant is the colour,
/// the seed the dash) or a heatmap (the cell-wise mean over a variant's seeds, one per variant).
public struct Figure: Sendable {
    public enum Kind: Sendable {
        case curve([(x: Double, y: Double)])
        case heatmap(rows: [String], columns: [String], values: [[Double?]])
    }
    public var id: String                   // the file: reports/<recipe>-<id>[-<variant>].svg
    public var title: String
    public var xLabel: String, yLabel: String
    public var markers: Bool
    public var kind: Kind
    public init(id: String, title: String, xLabel: String = "", yLabel: String = "", markers: Bool = false, kind: Kind) {
        self.id = id; self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.markers = markers; self.kind = kind
    }
}

/// What a finished job gives the report.
public struct JobReport {
    public var rows: [MetricRow]
    public var figures: [Figure]
    public var validity: [ValidityCheck] = []
}

/// What an evaluator's options may take from the recipe when they are resolved.
public struct ResolveContext {
    public var dataDir: String?              // the recipe's data-dir (nil: the default data root)
    public var seed: UInt64                  // the job's seed
    public var pretrain: PretrainOptions     // the pretraining the evaluator follows
    public var generated: GeneratedCorpus? = nil   // the recipe's [synthetic] or [facts] corpus (probes; synthetic: CounterFact, corpus)
}

/// What a running job gets.
public struct JobContext {
    public var directory: String             // the job directory (outputs go here)
    public var cacheDir: String              // shared cache (token shards, vocabularies)
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
    /// One line: what the evaluator measures (`droplab eval --help`).
    static var abstract: String { get }
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
    /// The report part its table goes to, and the table's heading.
    static var part: ReportPart { get }
    static var title: String { get }
    /// Report rows from the result; the first row is the evaluator's headline.
    static func rows(_ result: Result) -> [MetricRow]
    /// Per-unit values of some rows (row id -> units), from the result or the files the job
    /// wrote in `directory`, so the report pairs concepts or probes within a seed.
    static func units(_ result: Result, directory: String) throws -> [String: MetricRow.Units]
    static func figures(_ result: Result) -> [Figure]
    /// Whether the result means what its rows say, from the result and the files the job wrote
    /// (the same function at the end of the job, into result.json, and in the report).
    static func validity(_ result: Result, directory: String) throws -> [ValidityCheck]
}

public extension RecipeEvaluator {
    static var managedKeys: [String: String] { [:] }
    static var aliases: [String: [String]] { [:] }
    static func units(_ result: Result, directory: String) throws -> [String: MetricRow.Units] { [:] }
    static func figures(_ result: Result) -> [Figure] { [] }
    static func validity(_ result: Result, directory: String) throws -> [ValidityCheck] { [] }
}

/// A result with its validity checks beside its own keys (result.json).
struct ValidatedResult<R: Encodable>: Encodable {
    let result: R
    let validity: [ValidityCheck]
    enum Key: String, CodingKey { case validity }
    func encode(to encoder: Encoder) throws {
        try result.encode(to: encoder)
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(validity, forKey: .validity)
    }
}

/// A registered evaluator with its types erased: options travel as canonical JSON.
public struct AnyEvaluator {
    public let name: String
    public let abstract: String
    let aliases: [String: [String]]
    let decodeTable: (_ table: [String: Any], _ path: [String], _ source: RecipeSource, _ context: ResolveContext) throws -> Data
    let validateJSON: (Data) throws -> Void
    let datasetsJSON: (Data) throws -> [DatasetRef]
    let runJSON: (_ checkpoint: String, _ options: Data, _ context: JobContext) throws -> Data
    /// The command line's flags (`droplab eval NAME CHECKPOINT --flag value ...`) -> validated options JSON.
    let commandLine: (_ arguments: [String]) throws -> Data
    /// The options struct's defaults (canonical JSON), and the keys a recipe table may set
    /// (kebab-case, nested tables left out): what the one-declaration test compares.
    let defaultsJSON: Data
    let recipeKeys: Set<String>
    /// The command line's flags: (`--key <type>`, `help (default: value)`), sorted by flag.
    public let flagHelp: [(flag: String, text: String)]
    public let part: ReportPart
    public let title: String
    /// Rows (with their units) and figures of a finished job: its result.json and directory.
    public let report: (_ resultJSON: Data, _ directory: String) throws -> JobReport

    /// The recipe key path of an option key (a flattened key may be written nested).
    func keyPath(_ key: String, table: [String], source: RecipeSource) -> [String] {
        let direct = table + [key]
        if source.index.keyLines[direct] != nil { return direct }
        if let a = aliases[KeyStyle.camel(key)] { return table + a.map(KeyStyle.kebab) }
        return direct
    }

    public init<E: RecipeEvaluator>(_ e: E.Type) {
        name = E.name
        abstract = E.abstract
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
            let result = try E.run(checkpoint: checkpoint, options: o, context: context)
            let checks = try E.validity(result, directory: context.directory)
            for c in checks where !c.held { context.log("\(E.name): validity check failed: \(c.check) (measured \(c.value.map { String(format: "%.4g", $0) } ?? "nothing"))") }
            return try Canonical.json(ValidatedResult(result: result, validity: checks), pretty: true)
        }
        let fields = ArgumentFields(E.defaults, aliases: E.aliases)
        defaultsJSON = (try? Canonical.json(E.defaults)) ?? Data()
        let encoded = (try? JSONSerialization.jsonObject(with: defaultsJSON)) as? [String: Any] ?? [:]
        recipeKeys = OptionTable(managed: E.managedKeys, aliases: E.aliases).knownKeys(E.defaults, encoded: encoded)
            .filter { !(encoded[KeyStyle.camel($0)] is [String: Any]) }
        flagHelp = fields.helpRows
        commandLine = { args in
            let source = ArgumentSource(command: "eval \(E.name)")
            let d = try OptionTable(aliases: E.aliases).decode(E.defaults, table: try fields.table(args, source: source), tablePath: [], source: source)
            try d.value.validate()
            return try Canonical.json(d.value)
        }
        part = E.part
        title = E.title
        report = { json, directory in
            let r = try JSONDecoder().decode(E.Result.self, from: json)
            let units = try E.units(r, directory: directory)
            var rows = E.rows(r)
            for i in rows.indices { rows[i].units = units[rows[i].id] }
            return JobReport(rows: rows, figures: E.figures(r), validity: try E.validity(r, directory: directory))
        }
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
        AnyEvaluator(AcquisitionRecipeEvaluator.self),
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
