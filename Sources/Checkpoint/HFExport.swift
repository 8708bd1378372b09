// Export to a Hugging Face model directory: config.json, model.safetensors, vocab.txt, and
// parity_check.safetensors (inputs + droplab's own logits, for tools/check_hf_parity.py).

import Autograd
import BERT
import Foundation

public enum HFExport {
    public static func export(_ path: String, to dir: String) throws {
        let ck = try Checkpoint.load(path)
        try export(model: ck.model, vocab: ck.vocab, to: dir)
    }

    /// Export a model in memory (e.g. a base model with an edit baked in).
    public static func export(model: BertModel, vocab: [String], to dir: String) throws {
        try AtomicFile.checkWritableDirectory(dir, flag: "the output directory")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var config = try JSONSerialization.jsonObject(with: Data(try Checkpoint.configJSON(model.config).utf8)) as! [String: Any]
        config["architectures"] = [model.head == .mlm ? "BertForMaskedLM" : "BertForQuestionAnswering"]
        config["tie_word_embeddings"] = true
        try write(try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]),
                  to: dir + "/config.json")
        let tensors = model.params.entries.map { e in
            SafeTensor(name: e.name, dtype: "F32", shape: e.shape,
                       bytes: Data(bytes: model.params.values.pointer + e.offset, count: e.count * 4))
        }
        try write(safetensors(tensors), to: dir + "/model.safetensors")
        try write(Data((vocab.joined(separator: "\n") + "\n").utf8), to: dir + "/vocab.txt")

        // A small padded batch of random ids and the logits droplab computes for it.
        let B = 2, T = min(16, model.config.maxPositions)
        var rng = RNG(seed: 1234)
        let ids = (0..<B * T).map { _ in Int32(rng.int(model.config.vocabSize)) }
        let mask = (0..<B * T).map { i in Int32(i / T == 1 && i % T >= T / 2 ? 0 : 1) }
        let types = (0..<B * T).map { i in Int32(i % T >= T / 3 ? 1 : 0) % Int32(model.config.typeVocabSize) }
        let batch = Batch(ids: ids, typeIds: types, attentionMask: mask, batchSize: B, seqLen: T)
        let tape = Tape(recording: false)
        let hidden = model.encode(tape, batch)
        var check = [int64Tensor("input_ids", ids, [B, T]), int64Tensor("attention_mask", mask, [B, T]),
                     int64Tensor("token_type_ids", types, [B, T])]
        if model.head == .mlm {
            let logits = model.mlmLogits(tape, hidden)
            check.append(SafeTensor(name: "logits", dtype: "F32", shape: [B, T, model.config.vocabSize],
                                    bytes: Data(bytes: logits.data, count: logits.count * 4)))
        }
        try write(safetensors(check), to: dir + "/parity_check.safetensors")
    }

    struct SafeTensor { let name: String; let dtype: String; let shape: [Int]; let bytes: Data }

    static func int64Tensor(_ name: String, _ v: [Int32], _ shape: [Int]) -> SafeTensor {
        let wide = v.map { Int64($0).littleEndian }
        return SafeTensor(name: name, dtype: "I64", shape: shape, bytes: wide.withUnsafeBytes { Data($0) })
    }

    /// safetensors layout: u64 little-endian header size, JSON header, then the raw data.
    static func safetensors(_ tensors: [SafeTensor]) throws -> Data {
        var header: [String: Any] = ["__metadata__": ["format": "pt"]]
        var offset = 0
        for t in tensors {
            header[t.name] = ["dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.bytes.count]]
            offset += t.bytes.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }   // pad the header with spaces to 8-byte alignment
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors { out.append(t.bytes) }
        return out
    }

    /// Write via a temporary file and rename.
    static func write(_ data: Data, to path: String) throws {
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw CheckpointError(path, "cannot write: \(error.localizedDescription)")
        }
    }
}
