// The droplab checkpoint: one HDF5 file.
//   /<hf parameter name>          float32, one dataset per parameter (HF names and shapes)
//   /tokenizer/vocab              uint8, the vocab.txt bytes
//   /training/...                 optional resumable state (evaluators ignore it):
//       /training/state.json       uint8, JSON chosen by the trainer (step, tokens, RNG, data cursor, ...)
//       /training/<moment>/<name>  float32 optimizer moments per parameter (e.g. adam_m, adam_v)
// Root attributes: `format` = "droplab-checkpoint", `format_version`, `config` (HF config.json
// text), `head` ("mlm" | "qa").
// Writes go to a temporary file in the same directory, checked, fsynced and renamed into
// place (AtomicFile): a checkpoint on disk is always complete.

import Autograd
import BERT
import Foundation

public struct CheckpointError: Error, CustomStringConvertible {
    public let description: String
    public init(_ path: String, _ problem: String) { description = "\(path): \(problem)" }
}

public struct TrainingSnapshot {
    public var stateJSON: String
    public var moments: [(name: String, values: Storage)]   // each in parameter layout
    public init(stateJSON: String, moments: [(name: String, values: Storage)]) {
        self.stateJSON = stateJSON; self.moments = moments
    }
}

public struct LoadedCheckpoint {
    public let model: BertModel
    public let vocab: [String]
    public let training: TrainingSnapshot?
}

public enum Checkpoint {
    public static let format = "droplab-checkpoint"
    public static let formatVersion: Int64 = 1

    /// Atomically and durably write `model` (+ vocab, + optional training state) to `path`
    /// (see AtomicFile): every HDF5 write, flush and close is checked before the rename.
    public static func save(_ model: BertModel, vocab: [String], training: TrainingSnapshot? = nil, to path: String) throws {
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tmp = AtomicFile.temporaryPath(for: path)
        do {
            errno = 0
            let f = try HDF5File.create(tmp)
            try f.setAttribute("format", string: format)
            try f.setAttribute("format_version", int: formatVersion)
            try f.setAttribute("config", string: try configJSON(model.config))
            try f.setAttribute("head", string: model.head.rawValue)
            try writeTensors(model.params, storage: model.params.values, prefix: "", to: f)
            try f.write("tokenizer/vocab", bytes: Array((vocab.joined(separator: "\n") + "\n").utf8))
            if let training {
                try f.write("training/state.json", bytes: Array(training.stateJSON.utf8))
                for (name, values) in training.moments {
                    try writeTensors(model.params, storage: values, prefix: "training/\(name)/", to: f)
                }
            }
            try f.finish()
        } catch let e as HDF5Error {
            let reason = errno != 0 ? " (\(String(cString: strerror(errno))))" : ""   // what the failed write(2) said
            unlink(tmp)
            throw CheckpointError(path, "cannot save: \(e.description.dropFirst(tmp.count + 2))\(reason)")
        } catch {
            unlink(tmp)
            throw error
        }
        try AtomicFile.commit(tmp, to: path)
    }

    private static func writeTensors(_ params: Parameters, storage: Storage, prefix: String, to f: HDF5File) throws {
        for e in params.entries {
            try f.write(prefix + e.name, floats: UnsafeBufferPointer(start: storage.pointer + e.offset, count: e.count),
                        shape: e.shape)
        }
    }

    /// HF config.json text for `config` (sorted keys, stable output).
    public static func configJSON(_ config: BertConfig) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        return String(decoding: try enc.encode(config), as: UTF8.self)
    }

    /// Read a checkpoint. `head` selects the head to build (default: the file's); when it
    /// differs from the file's, the new head's parameters are freshly initialised with `seed`.
    /// `training` reads the resumable state (moment names) when present.
    public static func load(_ path: String, head: Head? = nil, seed: UInt64 = 0,
                            moments: [String] = []) throws -> LoadedCheckpoint {
        let f = try HDF5File.open(path)
        defer { f.close() }
        guard f.hasAttribute("format"), try f.stringAttribute("format") == format else {
            throw CheckpointError(path, "not a droplab checkpoint (no 'format' attribute \"\(format)\")")
        }
        let version = try f.intAttribute("format_version")
        guard version == formatVersion else {
            throw CheckpointError(path, "unsupported format_version \(version) (this droplab reads \(formatVersion))")
        }
        let config: BertConfig
        do {
            config = try JSONDecoder().decode(BertConfig.self, from: Data(try f.stringAttribute("config").utf8))
            try config.validate()
        } catch let e as HDF5Error { throw e } catch {
            throw CheckpointError(path, "invalid config: \(error)")
        }
        guard let fileHead = Head(rawValue: try f.stringAttribute("head")) else {
            throw CheckpointError(path, "unknown head '\(try f.stringAttribute("head"))'")
        }
        let model = BertModel(config: config, head: head ?? fileHead)
        if model.head != fileHead { model.initialize(seed: seed) }
        let fileSpecs = Set(BertModel.parameterSpecs(config, head: fileHead).map(\.name))
        for e in model.params.entries where fileSpecs.contains(e.name) {
            try readTensor(f, path: path, name: e.name, shape: e.shape, into: model.params.values.pointer + e.offset)
        }
        let vocabText = String(decoding: try f.readBytes("tokenizer/vocab"), as: UTF8.self)
        var vocab = vocabText.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if vocab.last == "" { vocab.removeLast() }
        guard vocab.count == config.vocabSize else {
            throw CheckpointError(path, "vocabulary has \(vocab.count) entries but vocab_size is \(config.vocabSize)")
        }
        var training: TrainingSnapshot? = nil
        if f.contains("training"), model.head == fileHead {
            var ms: [(String, Storage)] = []
            for name in moments {
                let s = Storage(count: model.params.totalCount)
                for e in model.params.entries {
                    try readTensor(f, path: path, name: "training/\(name)/\(e.name)", shape: e.shape, into: s.pointer + e.offset)
                }
                ms.append((name, s))
            }
            training = TrainingSnapshot(stateJSON: String(decoding: try f.readBytes("training/state.json"), as: UTF8.self),
                                        moments: ms)
        }
        return LoadedCheckpoint(model: model, vocab: vocab, training: training)
    }

    private static func readTensor(_ f: HDF5File, path: String, name: String, shape: [Int],
                                   into p: UnsafeMutablePointer<Float>) throws {
        guard f.contains(name) else { throw CheckpointError(path, "missing tensor '\(name)'") }
        try f.readFloats(name, into: UnsafeMutableBufferPointer(start: p, count: shape.reduce(1, *)), shape: shape)
        for i in 0..<shape.reduce(1, *) where !p[i].isFinite {
            throw CheckpointError(path, "tensor '\(name)' contains a non-finite value")
        }
    }
}
