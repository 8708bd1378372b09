// A corpus `recipe run` generates before any job, from the recipe's `[synthetic]` table
// (`droplab corpus synth`: invented facts, probes and CounterFact cases) or `[facts]` table
// (`droplab corpus facts`: ParaRel facts put into Wikipedia at controlled exposure, with the
// vocabulary the pretraining must use). Its directory's corpus.txt is every pretraining's corpus
// (and for [facts] its vocab.txt the vocabulary, its val-fraction the pretraining's), its
// probes.jsonl every probe and edit evaluator's probes unless their table names `probes`; the
// pretrainings' hashes include the generator's settings (its files do not exist before the run).

import Datasets
import Evaluators
import Foundation
import Training

public enum GeneratedCorpus {
    case synthetic(SynthOptions)
    case facts(FactsCorpusOptions)

    static let tables = ["synthetic", "facts"]

    /// `[table]` of the recipe (at most one of them), decoded and validated.
    /// `dataDir`: the recipe's data root, which [facts] reads unless its table names one.
    static func decode(_ root: [String: Any], _ source: RecipeSource, dataDir: String?) throws -> GeneratedCorpus? {
        let present = tables.filter { root[$0] != nil }
        if present.count > 1 { throw source.error([present[1]], "[\(present[0])] and [\(present[1])] both generate the corpus: keep one") }
        guard let name = present.first, let t = try Recipe.table(root, [name], source) else { return nil }
        do {
            if name == "synthetic" {
                let o = try OptionTable().decode(SynthOptions(), table: t, tablePath: [name], source: source).value
                try o.validate()
                return .synthetic(o)
            }
            var o = try OptionTable().decode(FactsCorpusOptions(), table: t, tablePath: [name], source: source).value
            if o.dataDir == nil { o.dataDir = dataDir }
            try o.validate()
            return .facts(o)
        } catch let e as OptionError {
            throw e.key.map { source.keyError([name, $0], "bad value: \(e)") } ?? source.error([name], "[\(name)]: \(e)")
        }
    }

    public var table: String { if case .synthetic = self { return "synthetic" } else { return "facts" } }
    public var out: String {
        switch self {
        case .synthetic(let o): return o.out
        case .facts(let o): return o.out
        }
    }
    public var corpus: String { out + "/" + SyntheticFacts.corpusFile }
    public var probes: String { out + "/" + SyntheticFacts.probesFile }
    /// The vocabulary the pretraining uses (nil: learned from the corpus as usual).
    var vocab: String? { if case .facts = self { return out + "/" + FactsCorpus.vocabFile } else { return nil } }
    var manifest: String {
        out + "/" + { if case .synthetic = self { return SyntheticFacts.manifestFile } else { return FactsCorpus.manifestFile } }()
    }
    /// CounterFact cases in its directory (rome and memit edit them, the directory as their data root).
    var hasCounterFact: Bool { if case .synthetic = self { return true } else { return false } }

    /// The pretraining options it sets, and why a recipe may not set them.
    var managedPretrainKeys: [String: String] {
        var keys = ["corpus": "the recipe's [\(table)] corpus"]
        if case .facts = self {
            keys["vocab"] = "the recipe's [facts] vocabulary"
            keys["valFraction"] = "the recipe's [facts] val-fraction"
            keys["salient"] = "the recipe's [facts] salient.jsonl, used when salient-mask-rate is set"
        }
        return keys
    }

    /// Before the recipe's keys are read.
    func apply(to o: inout PretrainOptions) {
        o.corpus = [corpus]
        if case .facts(let f) = self { o.vocab = vocab; o.valFraction = f.valFraction }
    }

    /// After them: salient masking (salient-mask-rate) masks the [facts] statements' objects.
    func complete(_ o: inout PretrainOptions) {
        if case .facts = self, o.salientMaskRate != nil { o.salient = out + "/" + FactsCorpus.salientFile }
    }

    /// Canonical JSON of the settings (the pretrainings' parent hash).
    func settingsJSON() throws -> Data {
        switch self {
        case .synthetic(let o): return try Canonical.json(o)
        case .facts(var o): o.dataDir = nil; return try Canonical.json(o)   // the data root's place is no part of the identity
        }
    }

    /// Generate (or find up to date); returns the log line.
    func write(log: @escaping (String) -> Void) throws -> String {
        switch self {
        case .synthetic(let o):
            let (status, m) = try SyntheticFacts.write(o, log: log)
            return "synthetic corpus \(o.out): \(status.rawValue) (\(m.counts["facts"] ?? 0) facts, \(m.counts["words"] ?? 0) words)"
        case .facts(let o):
            let (status, m) = try FactsCorpus.write(o, log: log)
            return "facts corpus \(o.out): \(status.rawValue) (\(m.counts["facts"] ?? 0) facts, \(m.pretrain.trainTokens) training tokens)"
        }
    }
}
