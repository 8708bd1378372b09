// CounterFact edit cases (Meng et al. 2022) as cloze probes, from <root>/counterfact/
// counterfact-{edit,train,val}.json (the flattened EasyEdit/MEND format: prompt ends where the
// object would follow, one paraphrase and one neighbourhood prompt per case). A case is kept
// when its true and new objects are each one word piece of the vocabulary.

import Foundation
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

    public static let splits = ["edit", "train", "val"]

    /// A CounterFact prompt ("The mother tongue of X is") as a cloze ("... is [MASK] .").
    public static func cloze(_ prompt: String) -> String {
        prompt.trimmingCharacters(in: .whitespaces) + " [MASK] ."
    }

    public static func load(dataDir: String?, split: String, tokenizer tok: WordPieceTokenizer, limit: Int?) throws -> EditCases {
        guard splits.contains(split) else { throw ProbeError("--split must be one of \(splits.joined(separator: ", ")), got '\(split)'") }
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
}
