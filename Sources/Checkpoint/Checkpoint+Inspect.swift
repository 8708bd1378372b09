// `droplab inspect`: a human-readable summary of a checkpoint.

import Autograd
import BERT
import Foundation

extension Checkpoint {
    /// (step, tokens) of a training checkpoint's state, read without loading its tensors; nil
    /// for an evaluation-only checkpoint.
    public static func trainingProgress(_ path: String) throws -> (step: Int, tokens: Int)? {
        let f = try HDF5File.open(path)
        defer { f.close() }
        guard f.contains("training/state.json") else { return nil }
        let state = (try? JSONSerialization.jsonObject(with: Data(try f.readBytes("training/state.json")))) as? [String: Any] ?? [:]
        guard let step = state["step"] as? Int, let tokens = state["tokens"] as? Int else { return nil }
        return (step, tokens)
    }

    /// Human-readable summary: config, training progress, and every tensor's shape and norm.
    public static func describe(_ path: String) throws -> String {
        let ck = try load(path)
        let c = ck.model.config
        var lines = ["\(path): droplab checkpoint v\(formatVersion), head \(ck.model.head.rawValue)",
                     "config: L\(c.numLayers) H\(c.hiddenSize) A\(c.numHeads) FFN\(c.intermediateSize) V\(c.vocabSize) "
                        + "max_positions \(c.maxPositions) type_vocab \(c.typeVocabSize)",
                     "dropout: hidden \(c.hiddenDropout) attention \(c.attentionDropout)",
                     "vocab: \(ck.vocab.count) tokens",
                     "parameters: \(ck.model.params.totalCount)"]
        if let t = ck.training {
            let state = (try? JSONSerialization.jsonObject(with: Data(t.stateJSON.utf8))) as? [String: Any] ?? [:]
            let known = ["step", "tokens"].compactMap { k in state[k].map { "\(k) \($0)" } }
            lines.append("training state: " + (known.isEmpty ? "present" : known.joined(separator: ", ")))
            lines.append("training state JSON: \(t.stateJSON)")
        } else {
            lines.append("training state: none (evaluation-only checkpoint)")
        }
        let width = ck.model.params.entries.map(\.name.count).max() ?? 0
        for e in ck.model.params.entries {
            let t = ck.model.params[e.name]
            var s = 0.0
            for i in 0..<t.count { s += Double(t.data[i]) * Double(t.data[i]) }
            let name = e.name.padding(toLength: width, withPad: " ", startingAt: 0)
            let shape = "[" + e.shape.map(String.init).joined(separator: ", ") + "]"
            lines.append("  \(name)  \(shape.padding(toLength: 14, withPad: " ", startingAt: 0))  norm \(String(format: "%.6g", s.squareRoot()))")
        }
        return lines.joined(separator: "\n")
    }
}
