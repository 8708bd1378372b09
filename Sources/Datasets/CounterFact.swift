// CounterFact edit cases (Meng et al. 2022) as cloze probes, from <root>/counterfact/
// counterfact-{edit,train,val}.json (the flattened EasyEdit/MEND format: prompt ends where the
// object would follow, one paraphrase and one neighbourhood prompt per case). A case is kept
// when its true and new objects are each one word piece of the vocabulary.

import Autograd
import Foundation
import Training
import Text

public struct EditCase: Codable, Equatable, Sendable {
    public var id: Int
    public var subject: String
    public var prompt: String            // "the mother tongue of danielle darrieux is [MASK] ."
    public var paraphrase: String
    public var neighbourhood: String     // another subject with the same true object
    public var trueTarget: String
    public var newTarget: String
}

public struct EditCases {
    public var cases: [EditCase]
    public var read = 0
    public var droppedMultiPiece = 0
    public var droppedUnpaired = 0       // probe facts without a paraphrase, a neighbour or another object

    public static let splits = ["edit", "train", "val"]

    /// A CounterFact prompt ("The mother tongue of X is") as a cloze ("... is [MASK] .").
    public static func cloze(_ prompt: String) -> String {
        prompt.trimmingCharacters(in: .whitespaces) + " [MASK] ."
    }

    public static func load(dataDir: String?, split: String, tokenizer tok: WordPieceTokenizer, limit: Int?) throws -> EditCases {
        guard splits.contains(split) else { throw OptionError(key: "split", "must be one of \(splits.joined(separator: ", ")), got '\(split)'") }
        let path = DataRoot.resolve(dataDir) + "/counterfact/counterfact-\(split).json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ProbeError("\(path): no such file (CounterFact; set --data-dir or DROPLAB_DATA)")
        }
        guard let items = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw ProbeError("\(path): not a JSON array of CounterFact cases")
        }
        var out = EditCases(cases: [])
        for (i, o) in items.enumerated() {
            if let limit, out.cases.count >= limit { break }
            guard let id = o["case_id"] as? Int, let subject = o["subject"] as? String, let prompt = o["prompt"] as? String,
                  let para = o["rephrase_prompt"] as? String, let neigh = o["locality_prompt"] as? String,
                  let t = o["ground_truth"] as? String, let n = o["target_new"] as? String else {
                throw ProbeError("\(path): case \(i) lacks one of case_id, subject, prompt, rephrase_prompt, locality_prompt, ground_truth, target_new")
            }
            out.read += 1
            let single = { (w: String) -> Bool in let ids = tok.encode(w); return ids.count == 1 && ids[0] != tok.unkId }
            guard single(t), single(n), tok.encode(t) != tok.encode(n) else { out.droppedMultiPiece += 1; continue }
            out.cases.append(EditCase(id: id, subject: subject, prompt: cloze(prompt), paraphrase: cloze(para), neighbourhood: cloze(neigh),
                                      trueTarget: t, newTarget: n))
        }
        return out
    }

    /// Edit cases from probes (ParaRel, or a user probe file), the fallback to CounterFact. A
    /// fact (its probes share `tuple`) with a subject becomes a case: its first probe is the
    /// prompt and its second the paraphrase; the neighbourhood is the probe of the same pattern
    /// of the first other fact of the relation with the same object and another subject; the new
    /// object is drawn with `seed` from the relation's other objects. Objects must be one word
    /// piece; facts without a paraphrase, a neighbour or another object are dropped (counted).
    /// The first `limit` usable facts, in file order.
    public static func fromProbes(_ probes: [Probe], seed: UInt64, tokenizer tok: WordPieceTokenizer, limit: Int?) -> EditCases {
        var facts: [String: [Probe]] = [:], order: [String] = []
        for p in probes where p.subject != nil {
            if facts[p.tuple] == nil { order.append(p.tuple) }
            facts[p.tuple, default: []].append(p)
        }
        let single = { (w: String) -> Bool in let ids = tok.encode(w); return ids.count == 1 && ids[0] != tok.unkId }
        var objects: [String: [String]] = [:], byObject: [String: [String]] = [:]   // relation -> objects; relation+object -> facts
        for t in order {
            let p = facts[t]![0]
            if single(p.target), !(objects[p.relation] ?? []).contains(p.target) { objects[p.relation, default: []].append(p.target) }
            byObject[p.relation + "\u{0}" + p.target, default: []].append(t)
        }
        var rng = RNG(seed: seed ^ 0x7061_7261)
        var out = EditCases(cases: [])
        for t in order {
            if let limit, out.cases.count >= limit { break }
            let ps = facts[t]!, p = ps[0]
            out.read += 1
            guard single(p.target) else { out.droppedMultiPiece += 1; continue }
            let others = objects[p.relation]!.filter { $0 != p.target }
            let neighbour = byObject[p.relation + "\u{0}" + p.target]!.lazy.map { facts[$0]! }.first { $0[0].subject != p.subject }
            guard ps.count >= 2, !others.isEmpty, let n = neighbour else { out.droppedUnpaired += 1; continue }
            let neighbourProbe = n.first { $0.pattern == p.pattern } ?? n[0]
            out.cases.append(EditCase(id: out.read - 1, subject: p.subject!, prompt: p.prompt, paraphrase: ps[1].prompt,
                                      neighbourhood: neighbourProbe.prompt, trueTarget: p.target, newTarget: others[rng.int(others.count)]))
        }
        return out
    }
}
