// Cloze probes for the knowledge evaluators: one `Probe` type, two loaders (ParaRel patterns x
// T-REx tuples, and user JSONL), tokenization against a checkpoint's vocabulary (a probe is
// kept only when its target is one word piece), and length-sorted padded batches with named
// positions ([MASK], subject tokens, [CLS], [SEP]).
//
// ParaRel (Elazar et al. 2021): <root>/pararel/graphs_json/P*.jsonl holds a relation's
// paraphrase patterns ("[X] is located in [Y] ."), <root>/pararel/trex_lms_vocab/P*.jsonl its
// facts {sub_label, obj_label, uuid}. A probe is a pattern with [X] -> subject, [Y] -> [MASK].

import Autograd
import BERT
import Foundation
import Training
import Text

public struct Probe: Codable, Equatable, Sendable {
    public var prompt: String          // text with exactly one [MASK]
    public var target: String          // the gold object word (the concept)
    public var subject: String?        // occurs in the prompt (first occurrence is the subject span)
    public var relation: String        // ParaRel relation id, or the user file's "relation" (default "user")
    public var pattern: Int            // pattern index within the relation (-1 for user probes)
    public var tuple: String           // fact id: T-REx uuid, or "user:<line>"
    public var split: String? = nil    // the user file's "split" (e.g. "train" / "held-out" templates)
    public var bucket: Int? = nil      // the user file's "bucket": times the corpus stated the fact (corpus facts)
    public var concept: String { target }

    package init(prompt: String, target: String, subject: String?, relation: String, pattern: Int, tuple: String,
                 split: String? = nil, bucket: Int? = nil) {
        self.prompt = prompt; self.target = target; self.subject = subject; self.relation = relation
        self.pattern = pattern; self.tuple = tuple; self.split = split; self.bucket = bucket
    }

    /// A user probe, checked: the prompt holds [MASK] exactly once and the subject, if any,
    /// occurs in it. `place` (a file:line or a flag) starts the error message.
    public static func user(prompt: String, target: String, subject: String?, relation: String = "user", pattern: Int = -1,
                            fact: String? = nil, split: String? = nil, bucket: Int? = nil, place: String) throws -> Probe {
        guard prompt.components(separatedBy: "[MASK]").count == 2 else {
            throw ProbeError("\(place): the prompt must contain [MASK] exactly once")
        }
        if let s = subject, !prompt.contains(s) { throw ProbeError("\(place): subject '\(s)' does not occur in the prompt") }
        return Probe(prompt: prompt, target: target, subject: subject, relation: relation, pattern: pattern,
                     tuple: fact ?? "\(relation):\(subject ?? prompt):\(target)", split: split, bucket: bucket)
    }
}

/// Which probes an evaluator reads; shared by every knowledge evaluator.
public struct ProbeOptions: Codable, Equatable, Sendable {
    public var dataDir: String? = nil
    public var probes: String? = nil       // user probes (JSONL); default: ParaRel under the data root
    public var relations: [String] = []    // ParaRel relations to use (default: all with patterns)
    public var limit: Int? = nil           // facts (tuples) sampled with the seed, all their patterns kept
    public var seed: UInt64 = 0
    public var batch = 64                  // sequences per forward pass
    public var knownOnly: Bool? = nil      // keep only probes the model answers right at [MASK] (unset: all)
    public init() {}

    /// The values; the --probes file is checked where it is read (`ProbeSet.load`), and by
    /// recipes with their other datasets (it may be one the recipe generates).
    public func validate() throws {
        if let l = limit, l < 1 { throw OptionError(key: "limit", "must be at least 1, got \(l)") }
        if batch < 1 { throw OptionError(key: "batch", "must be at least 1, got \(batch)") }
    }
}

extension ProbeOptions: OptionHelp {
    public static let help: [String: String] = [
        "dataDir": "Dataset root (ParaRel in <root>/pararel).",
        "probes": "User probes: JSONL of {\"prompt\": \"... [MASK] ...\", \"target\": ..., \"subject\": ...} (unset: ParaRel).",
        "relations": "ParaRel relations to use, e.g. P17 P19 (empty: all).",
        "limit": "Facts to sample (all their paraphrases are kept; unset: all).",
        "seed": "Seed for sampling facts, pairs and noise.",
        "batch": "Sequences per forward pass.",
        "knownOnly": "Keep only the probes the model answers right at [MASK] before any intervention (unset: all probes).",
    ]
}

/// The options of a probe evaluator: its probe source plus its own settings, checked by
/// `validate` (messages name the flag) for the command line and recipes alike.
public protocol ProbeEvaluatorOptions: CommandOptions, Sendable {
    var source: ProbeOptions { get set }
}

public struct ProbeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// A probe as token ids of one checkpoint's vocabulary.
public struct TokenizedProbe: Sendable {
    public var index: Int               // into ProbeSet.probes
    public var ids: [Int32]             // [CLS] ... [SEP]
    public var maskPosition: Int
    public var subject: Range<Int>?     // token positions of the subject
    public var targetId: Int32
}

/// Per relation: facts read, facts kept, facts dropped because the object is not one word piece.
public struct ProbeCounts: Codable, Equatable, Sendable {
    public var facts = 0
    public var keptFacts = 0
    public var droppedMultiPiece = 0
    public var droppedOther = 0         // no [MASK], subject not found, longer than the model allows
    public var probes = 0
    public var knownProbes: Int? = nil  // --known-only: the probes kept (the model answers them right)
    public init() {}
}

public struct ProbeSet {
    public var probes: [Probe]
    public var tokenized: [TokenizedProbe]           // aligned with probes
    public var counts: [String: ProbeCounts]          // by relation

    package init(probes: [Probe], tokenized: [TokenizedProbe], counts: [String: ProbeCounts]) {
        self.probes = probes; self.tokenized = tokenized; self.counts = counts
    }

    /// The probes at `indices` (in that order), re-indexed; `counts` unchanged.
    public func keeping(_ indices: [Int]) -> ProbeSet {
        var t = indices.map { tokenized[$0] }
        for i in t.indices { t[i].index = i }
        return ProbeSet(probes: indices.map { probes[$0] }, tokenized: t, counts: counts)
    }

    /// Load and tokenize. Facts whose object is not a single word piece are dropped (counted).
    public static func load(_ o: ProbeOptions, tokenizer tok: WordPieceTokenizer, maxLength: Int) throws -> ProbeSet {
        if let p = o.probes {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else { throw OptionError(key: "probes", "\(p): no such file") }
            if isDir.boolValue { throw OptionError(key: "probes", "\(p): is a directory, not a JSONL file") }
        }
        let raw = try o.probes.map(readJSONL) ?? readParaRel(dataDir: o.dataDir, relations: o.relations)
        return make(raw, limit: o.limit, seed: o.seed, tokenizer: tok, maxLength: maxLength)
    }

    /// Tokenize `raw` probes; `limit` keeps that many facts drawn with `seed`.
    public static func make(_ raw: [Probe], limit: Int?, seed: UInt64, tokenizer tok: WordPieceTokenizer, maxLength: Int) -> ProbeSet {
        // --limit keeps N facts drawn with the seed (with all their patterns), in file order
        var facts: [String: [Probe]] = [:], order: [String] = []
        for p in raw {
            if facts[p.tuple] == nil { order.append(p.tuple) }
            facts[p.tuple, default: []].append(p)
        }
        if let limit, limit < order.count {
            var rng = RNG(seed: seed ^ 0x7072_6F62_6573)   // "probes"
            var shuffled = order
            rng.shuffle(&shuffled)
            let chosen = Set(shuffled.prefix(limit))
            order = order.filter(chosen.contains)
        }
        var set = ProbeSet(probes: [], tokenized: [], counts: [:])
        for id in order {
            let group = facts[id]!
            let relation = group[0].relation
            set.counts[relation, default: .init()].facts += 1
            let target = tok.encode(group[0].target)
            guard target.count == 1, target[0] != tok.unkId else { set.counts[relation]!.droppedMultiPiece += 1; continue }
            let toks = group.compactMap { tokenize($0, target: target[0], tok: tok, maxLength: maxLength) }
            guard toks.count == group.count else { set.counts[relation]!.droppedOther += 1; continue }
            set.counts[relation]!.keptFacts += 1
            set.counts[relation]!.probes += group.count
            for (p, t) in zip(group, toks) {
                var t = t
                t.index = set.probes.count
                set.probes.append(p); set.tokenized.append(t)
            }
        }
        return set
    }

    /// [CLS] prompt [SEP] with the [MASK] and subject positions; nil when unusable.
    package static func tokenize(_ p: Probe, target: Int32, tok: WordPieceTokenizer, maxLength: Int) -> TokenizedProbe? {
        let pieces = tok.encodeWithOffsets(p.prompt)
        let ids = [tok.clsId] + pieces.map(\.id) + [tok.sepId]
        guard ids.count <= maxLength, ids.filter({ $0 == tok.maskId }).count == 1,
              let mask = ids.firstIndex(of: tok.maskId) else { return nil }
        var subject: Range<Int>? = nil
        if let s = p.subject {
            guard let r = p.prompt.range(of: s) else { return nil }
            let lo = p.prompt.unicodeScalars.distance(from: p.prompt.startIndex, to: r.lowerBound)
            let hi = p.prompt.unicodeScalars.distance(from: p.prompt.startIndex, to: r.upperBound)
            let inside = pieces.indices.filter { pieces[$0].start < hi && pieces[$0].end > lo }
            guard let a = inside.first, let b = inside.last else { return nil }
            subject = (a + 1)..<(b + 2)   // +1 for [CLS]
        }
        return TokenizedProbe(index: 0, ids: ids, maskPosition: mask, subject: subject, targetId: target)
    }

    package static func readParaRel(dataDir: String?, relations: [String]) throws -> [Probe] {
        let root = DataRoot.resolve(dataDir) + "/pararel"
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: root + "/graphs_json").filter({ $0.hasSuffix(".jsonl") }),
              !names.isEmpty else {
            throw ProbeError("\(root)/graphs_json: no ParaRel pattern files (set --data-dir or DROPLAB_DATA)")
        }
        let available = Set(names.map { String($0.dropLast(6)) })
        for r in relations where !available.contains(r) {
            throw OptionError(key: "relations", "unknown ParaRel relation '\(r)' (known: \(available.sorted().joined(separator: ", ")))")
        }
        var out: [Probe] = []
        for rel in (relations.isEmpty ? available.sorted() : relations) {
            let tuplesFile = root + "/trex_lms_vocab/\(rel).jsonl"
            guard fm.fileExists(atPath: tuplesFile) else { continue }   // patterns without facts
            var patterns: [String] = []
            try forEachObject(root + "/graphs_json/\(rel).jsonl") { o, where_ in
                guard let p = o["pattern"] as? String, p.contains("[X]"), p.contains("[Y]") else {
                    throw ProbeError("\(where_): not a ParaRel pattern (needs \"pattern\" with [X] and [Y])")
                }
                patterns.append(p)
            }
            try forEachObject(tuplesFile) { o, where_ in
                guard let s = o["sub_label"] as? String, let t = o["obj_label"] as? String else {
                    throw ProbeError("\(where_): not a T-REx fact (needs sub_label and obj_label)")
                }
                let id = o["uuid"] as? String ?? "\(rel):\(s):\(t)"
                for (k, pat) in patterns.enumerated() {
                    let prompt = pat.replacingOccurrences(of: "[X]", with: s).replacingOccurrences(of: "[Y]", with: "[MASK]")
                    out.append(Probe(prompt: prompt, target: t, subject: s, relation: rel, pattern: k, tuple: id))
                }
            }
        }
        return out
    }

    /// User probes: one JSON object per line, {"prompt": "... [MASK] ...", "target": "...",
    /// "subject": "..." (optional), "relation": "..." (optional), "fact": "..." (optional: lines
    /// with the same fact are paraphrases of one fact; default: prompt with the subject),
    /// "pattern": N (optional), "split": "..." (optional: consistency reports each split), "bucket": N
    /// (optional: how often `corpus facts` stated the fact); other keys ("concept") are ignored}.
    package static func readJSONL(_ path: String) throws -> [Probe] {
        var out: [Probe] = []
        try forEachObject(path) { o, where_ in
            guard let prompt = o["prompt"] as? String, let target = o["target"] as? String else {
                throw ProbeError("\(where_): a probe needs \"prompt\" and \"target\" strings")
            }
            out.append(try Probe.user(prompt: prompt, target: target, subject: o["subject"] as? String, relation: o["relation"] as? String ?? "user",
                                      pattern: o["pattern"] as? Int ?? -1, fact: o["fact"] as? String,
                                      split: o["split"] as? String, bucket: o["bucket"] as? Int, place: where_))
        }
        if out.isEmpty { throw ProbeError("\(path): no probes") }
        return out
    }

    static func forEachObject(_ path: String, _ body: ([String: Any], String) throws -> Void) throws {
        var line = 0
        try Corpus.forEachLine(path) { text in
            line += 1
            guard !text.trimmingCharacters(in: .whitespaces).isEmpty else { return }
            guard let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                throw ProbeError("\(path):\(line): not a JSON object")
            }
            try body(o, "\(path):\(line)")
        }
    }
}

/// Positions in a probe, by name.
public enum Position: String, CaseIterable, Codable, Sendable {
    case mask, cls, sep
    case subjectFirst = "subject-first", subjectLast = "subject-last"
    case subject, all

    /// The token positions of this kind in `p` (empty when the probe has no subject).
    public func positions(in p: TokenizedProbe) -> [Int] {
        switch self {
        case .mask: return [p.maskPosition]
        case .cls: return [0]
        case .sep: return [p.ids.count - 1]
        case .subjectFirst: return p.subject.map { [$0.lowerBound] } ?? []
        case .subjectLast: return p.subject.map { [$0.upperBound - 1] } ?? []
        case .subject: return p.subject.map(Array.init) ?? []
        case .all: return Array(p.ids.indices)
        }
    }
}

/// Probes padded to one length, as a model batch. Example b's position t is row b*T + t of
/// every site.
public struct ProbeBatch {
    public let items: [TokenizedProbe]
    public let batch: Batch
    public var T: Int { batch.seqLen }

    public init(_ items: [TokenizedProbe], padId: Int32) {
        let T = items.map(\.ids.count).max() ?? 1
        var ids = [Int32](repeating: padId, count: items.count * T), mask = [Int32](repeating: 0, count: items.count * T)
        for (b, p) in items.enumerated() {
            for (t, id) in p.ids.enumerated() { ids[b * T + t] = id; mask[b * T + t] = 1 }
        }
        self.items = items
        batch = Batch(ids: ids, attentionMask: mask, batchSize: items.count, seqLen: T)
    }

    public func row(_ b: Int, _ t: Int) -> Int32 { Int32(b * T + t) }
    public var maskRows: [Int32] { items.indices.map { row($0, items[$0].maskPosition) } }
    public var targets: [Int32] { items.map(\.targetId) }

    /// Length-sorted batches of at most `size` probes (stable within a length).
    public static func batches(_ probes: [TokenizedProbe], size: Int, padId: Int32) -> [ProbeBatch] {
        let sorted = probes.enumerated().sorted { ($0.element.ids.count, $0.offset) < ($1.element.ids.count, $1.offset) }.map(\.element)
        return stride(from: 0, to: sorted.count, by: size).map { ProbeBatch(Array(sorted[$0..<min($0 + size, sorted.count)]), padId: padId) }
    }
}
