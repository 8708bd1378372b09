// Where a checkpoint's results go: <root>/<name>/ (an evaluator's job directory <name>/<eval>/,
// see Recipes/EvalArguments; explore's pages), where the name is the checkpoint's run directory
// name (plus "-<stem>" unless the file is last.h5) and the first 8 hex digits of the sha256 of
// the checkpoint's absolute path, so `a/run/last.h5` and `b/run/last.h5` never share a
// directory. Files are written atomically; replacing one is logged.

import Checkpoint
import Datasets
import Foundation
import Text

public enum Results {
    public static func checkpointName(_ path: String) -> String {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let stem = url.deletingPathExtension().lastPathComponent
        let run = url.deletingLastPathComponent().lastPathComponent
        let hash = SHA256.hex(Data(url.path.utf8)).prefix(8)
        return (stem == "last" ? run : "\(run)-\(stem)") + "-\(hash)"
    }

    public static func directory(for checkpoint: String, root: String = "results") -> String {
        root + "/" + checkpointName(checkpoint)
    }

    /// Bytes into the checkpoint's results directory, atomically; says when a file is replaced.
    @discardableResult
    public static func store(_ data: Data, file: String, checkpoint: String, root: String = "results", log: (String) -> Void) throws -> String {
        let dir = directory(for: checkpoint, root: root)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/" + file
        let existed = FileManager.default.fileExists(atPath: path)
        try AtomicFile.write(data, to: path)
        if existed { log("replaced \(path)") }
        return path
    }

    /// One JSON object per line, sorted keys.
    public static func jsonLines<T: Encodable>(_ values: [T]) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = Data()
        for v in values { data.append(try enc.encode(v)); data.append(0x0A) }
        return data
    }

    /// The records of a file written by `jsonLines`, or of its gzip copy `<path>.gz` (the
    /// committed job files keep their records compressed); errors name the file and line.
    public static func readLines<T: Decodable>(_ type: T.Type, from path: String) throws -> [T] {
        guard let file = recordFile(path) else { throw CorpusError("\(path): cannot read (no such file, nor \(path).gz)") }
        let dec = JSONDecoder()
        var records: [T] = [], line = 0
        try Corpus.forEachLine(file) { text in
            line += 1
            guard !text.isEmpty else { return }
            guard let record = try? dec.decode(T.self, from: Data(text.utf8)) else { throw CorpusError("\(file):\(line): not a \(T.self) record") }
            records.append(record)
        }
        return records
    }

    /// `path`, or its gzip copy `<path>.gz`, whichever exists (nil: neither).
    public static func recordFile(_ path: String) -> String? {
        [path, path + ".gz"].first { FileManager.default.fileExists(atPath: $0) }
    }
}

/// One check that a result means what its label says (issue #29): what was checked and against
/// what bound, the measured value, whether it held, and — when it did not — the words a report
/// shows in place of the rows it gates. Every evaluator's checks are a function of its stored
/// result (`RecipeEvaluator.validity`): written into result.json as `validity` when a job
/// finishes, recomputed by the report (so older results are checked too).
public struct ValidityCheck: Codable, Equatable, Sendable {
    public var id: String                // e.g. "lora.r4.fit"
    public var check: String             // what was checked, bound included, in words
    public var value: Double?            // the measured quantity (nil: not measurable)
    public var bound: Double?
    public var held: Bool
    public var failure: String           // shown in place of the gated numbers, e.g. "mask did not move"
    public var gates: [String]           // row ids withheld when it fails; "p.*": every row whose id starts with "p."
    public init(id: String, check: String, value: Double?, bound: Double?, held: Bool, failure: String, gates: [String]) {
        self.id = id; self.check = check; self.value = value; self.bound = bound; self.held = held; self.failure = failure; self.gates = gates
    }

    /// Whether a failed check withholds the row `rowId`.
    public func gates(_ rowId: String) -> Bool {
        !held && gates.contains { $0.hasSuffix("*") ? rowId.hasPrefix($0.dropLast()) : rowId == $0 }
    }
}
