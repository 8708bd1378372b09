// Where a checkpoint's results go: <root>/<name>/ (an evaluator's job directory <name>/<eval>/,
// see Recipes/EvalArguments; explore's pages), where the name is the checkpoint's run directory
// name (plus "-<stem>" unless the file is last.h5) and the first 8 hex digits of the sha256 of
// the checkpoint's absolute path, so `a/run/last.h5` and `b/run/last.h5` never share a
// directory. Files are written atomically; replacing one is logged.

import Checkpoint
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

    /// The records of a file written by `jsonLines`; errors name the file and line.
    public static func readLines<T: Decodable>(_ type: T.Type, from path: String) throws -> [T] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw CorpusError("\(path): cannot read (\((error as NSError).localizedDescription))")
        }
        let dec = JSONDecoder()
        return try text.split(separator: "\n", omittingEmptySubsequences: true).enumerated().map { i, line in
            guard let record = try? dec.decode(T.self, from: Data(line.utf8)) else {
                throw CorpusError("\(path):\(i + 1): not a \(T.self) record")
            }
            return record
        }
    }
}
