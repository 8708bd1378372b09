// Where evaluator results go: results/<checkpoint-name>/<eval>.json, where the checkpoint
// name is its run directory's name, plus "-<stem>" unless the file is last.h5.

import Foundation

public enum Results {
    public static func checkpointName(_ path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let stem = url.deletingPathExtension().lastPathComponent
        let run = url.deletingLastPathComponent().lastPathComponent
        return stem == "last" ? run : "\(run)-\(stem)"
    }

    public static func directory(for checkpoint: String, root: String = "results") -> String {
        root + "/" + checkpointName(checkpoint)
    }

    /// Write `value` as pretty JSON (sorted keys) atomically; returns the path.
    @discardableResult
    public static func write<T: Encodable>(_ value: T, name: String, checkpoint: String, root: String = "results") throws -> String {
        let dir = directory(for: checkpoint, root: root)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let path = dir + "/" + name + ".json"
        try enc.encode(value).write(to: URL(fileURLWithPath: path), options: .atomic)
        return path
    }
}
