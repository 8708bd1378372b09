// `droplab eval consistency`: factual accuracy and consistency of cloze predictions.
//  - accuracy: top-1 (over the whole vocabulary) at [MASK] equals the gold object;
//  - consistency (ParaRel, Elazar et al. 2021): for each fact, the share of pairs of its
//    paraphrase patterns whose top-1 predictions agree, averaged over facts with >= 2 patterns;
//  - unique_predictions (the drop-dropout study's measure): the number of distinct top-1
//    predictions within each (relation, gold object) group, averaged over groups; lower is
//    more consistent;
//  - consistency over known facts: the same pair agreement over the facts the model answers
//    right in at least one of their patterns (all of those facts' patterns counted). A model
//    that knows nothing has no known facts, so a constant or guessing predictor cannot score
//    here what it scores on all facts.
// Each measure is also given per relation and, for user probes with a "split" (the synthetic
// corpus's training and held-out templates), per split.

import Autograd
import BERT
import Datasets
import Foundation
import Interventions
import Training

public struct ConsistencyOptions: ProbeEvaluatorOptions, Equatable {
    public var source = ProbeOptions()
    public init() {}
    public func validate() throws { try source.validate() }
}

extension ConsistencyOptions: OptionHelp {
    public static let help: [String: String] = [
        "source": "The probes (see the probe options).",
    ]
}

public struct ConsistencyResult: Codable, Sendable {
    public var checkpoint: String
    public var options: ConsistencyOptions
    public var probes: Int
    public var facts: Int
    public var accuracy: Double
    public var consistency: Double?          // nil when no fact has two patterns
    public var uniquePredictions: Double
    public var perRelation: [String: RelationConsistency]
    public var perSplit: [String: RelationConsistency]?     // nil when no probe has a split
    public var counts: [String: ProbeCounts]
    public var seconds: Double
    /// The most frequent prediction and its share of the probes: a model that answers one word
    /// everywhere is perfectly "consistent" (the synthetic-tiny dropout 0.7 models: "the"
    /// everywhere, consistency 100%, accuracy 0%); above `degenerateShare` its consistency means nothing.
    public var topPrediction: String? = nil
    public var topPredictionShare: Double? = nil
    /// The facts answered right in at least one pattern, and the consistency over those with two
    /// or more patterns (nil: none, or a result written before 2026-12-07).
    public var knownFacts: Int? = nil
    public var knownConsistency: Double? = nil
    public static let degenerateShare = 0.5
    public var degenerate: Bool { (topPredictionShare ?? 0) > Self.degenerateShare }
}

public struct RelationConsistency: Codable, Equatable, Sendable {
    public var probes: Int
    public var accuracy: Double
    public var consistency: Double?
    public var uniquePredictions: Double
}

public struct ConsistencyProbeRecord: Codable, Sendable {
    public var prompt: String, target: String, prediction: String, relation: String, pattern: Int, fact: String
    public var split: String?
    public var prob: Double, rank: Int
}

public enum Consistency {
    public struct Measures {
        public var accuracy, consistency, uniquePredictions: Double
        /// Facts answered right in at least one pattern, and the consistency over them (NaN: none with two patterns).
        public var knownFacts: Int, knownConsistency: Double
    }

    /// The measures over probes with their top-1 predictions: `facts` names each probe's fact
    /// (its paraphrases agree or not), `groups` its (relation, object).
    public static func measures<T: Hashable>(facts: [String], groups: [String], predictions: [T], targets: [T]) -> Measures {
        let right = zip(predictions, targets).map { $0 == $1 }
        var byFact: [String: [Int]] = [:], byGroup: [String: Set<T>] = [:]
        for i in predictions.indices {
            byFact[facts[i], default: []].append(i)
            byGroup[groups[i], default: []].insert(predictions[i])
        }
        var agreement: [Double] = [], knownAgreement: [Double] = [], known = 0   // in key order: the same sums every time
        for idx in byFact.keys.sorted().map({ byFact[$0]! }) {
            let isKnown = idx.contains { right[$0] }
            if isKnown { known += 1 }
            guard idx.count >= 2 else { continue }
            var same = 0, pairs = 0
            for i in 0..<idx.count { for j in (i + 1)..<idx.count { pairs += 1; if predictions[idx[i]] == predictions[idx[j]] { same += 1 } } }
            agreement.append(Double(same) / Double(pairs))
            if isKnown { knownAgreement.append(Double(same) / Double(pairs)) }
        }
        return Measures(accuracy: mean(right.map { $0 ? 1 : 0 }), consistency: mean(agreement),
                        uniquePredictions: mean(byGroup.keys.sorted().map { Double(byGroup[$0]!.count) }),
                        knownFacts: known, knownConsistency: mean(knownAgreement))
    }

    /// `measures` of probes: facts by their tuple, groups by relation and object.
    static func measures(_ probes: [Probe], _ predictions: [Int32], targets: [Int32]) -> Measures {
        measures(facts: probes.map(\.tuple), groups: probes.map { $0.relation + "\u{1}" + $0.target }, predictions: predictions, targets: targets)
    }

    public static func run(checkpoint: String, options o: ConsistencyOptions, log: @escaping (String) -> Void) throws
        -> (result: ConsistencyResult, records: [ConsistencyProbeRecord]) {
        let began = Date()
        let k = try KnowledgeSetup.load(checkpoint: checkpoint, probes: o.source, log: log)
        let n = k.probes.tokenized.count
        var prob = [Double](repeating: 0, count: n), rank = [Int](repeating: 0, count: n), top = [Int32](repeating: 0, count: n)
        let progress = ProgressLog("consistency", total: n, log: log)
        var done = 0
        for pb in ProbeBatch.batches(k.probes.tokenized, size: o.source.batch, padId: k.tokenizer.padId) {
            let s = ProbeScoring.run(k.model, pb)
            for (b, p) in pb.items.enumerated() { prob[p.index] = s.prob[b]; rank[p.index] = s.rank[b]; top[p.index] = s.top1[b] }
            done += pb.items.count
            progress.update(done)
        }
        let targets = k.probes.tokenized.map(\.targetId)
        let all = measures(k.probes.probes, top, targets: targets)
        /// The measures over the probes in each group of `key`.
        func grouped(_ key: (Probe) -> String?) -> [String: RelationConsistency] {
            var out: [String: RelationConsistency] = [:]
            for g in Set(k.probes.probes.compactMap(key)) {
                let idx = k.probes.probes.indices.filter { key(k.probes.probes[$0]) == g }
                let m = measures(idx.map { k.probes.probes[$0] }, idx.map { top[$0] }, targets: idx.map { targets[$0] })
                out[g] = RelationConsistency(probes: idx.count, accuracy: m.accuracy, consistency: finite(m.consistency),
                                             uniquePredictions: m.uniquePredictions)
            }
            return out
        }
        let perRelation = grouped(\.relation), perSplit = grouped(\.split)
        let records = k.probes.probes.indices.map { i in
            let p = k.probes.probes[i]
            return ConsistencyProbeRecord(prompt: p.prompt, target: p.target, prediction: k.token(top[i]), relation: p.relation,
                                          pattern: p.pattern, fact: p.tuple, split: p.split, prob: prob[i], rank: rank[i])
        }
        var r = ConsistencyResult(checkpoint: checkpoint, options: o, probes: n, facts: Set(k.probes.probes.map(\.tuple)).count,
                                  accuracy: all.accuracy, consistency: finite(all.consistency), uniquePredictions: all.uniquePredictions,
                                  perRelation: perRelation, perSplit: perSplit.isEmpty ? nil : perSplit, counts: k.probes.counts, seconds: Date().timeIntervalSince(began))
        r.knownFacts = all.knownFacts; r.knownConsistency = finite(all.knownConsistency)
        let freq = Dictionary(top.map { ($0, 1) }, uniquingKeysWith: +)
        if let (id, c) = freq.max(by: { ($0.value, $1.key) < ($1.value, $0.key) }) {
            r.topPrediction = k.token(id); r.topPredictionShare = Double(c) / Double(n)
        }
        return (r, records)
    }
}
