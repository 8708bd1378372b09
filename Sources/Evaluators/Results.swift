// Where evaluator results go: <root>/<name>/<eval>.json, where the name is the checkpoint's
// run directory name (plus "-<stem>" unless the file is last.h5) and the first 8 hex digits
// of the sha256 of the checkpoint's absolute path, so `a/run/last.h5` and `b/run/last.h5`
// never share a directory. Files are written atomically; replacing one is logged.

import Checkpoint
import Foundation

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

    /// Write `value` as pretty JSON (sorted keys) atomically; returns the path.
    @discardableResult
    public static func write<T: Encodable>(_ value: T, name: String, checkpoint: String, root: String = "results",
                                           log: (String) -> Void) throws -> String {
        let dir = directory(for: checkpoint, root: root)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let path = dir + "/" + name + ".json"
        let existed = FileManager.default.fileExists(atPath: path)
        try AtomicFile.write(try enc.encode(value), to: path)
        if existed { log("replaced \(path)") }
        return path
    }
}
