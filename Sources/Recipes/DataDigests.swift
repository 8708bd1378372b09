// Content digests of the datasets jobs read (corpus files, vocabularies, evaluator data): a
// file's sha256; a directory's is the sha256 of its "name digest" lines, sorted by name
// (subdirectories recursively). They go into job hashes (a changed dataset is a different job)
// and into done.json. A file's digest is cached under its absolute path with its size and
// modification time, in memory and in <checkpoints>/cache/data-digests.json (written by
// `recipe run`), so a large file is read again only when it changes.

import Checkpoint
import Datasets
import Evaluators
import Foundation

public final class DataDigests {
    struct Entry: Codable, Equatable {
        var size: Int
        var mtime: Double
        var sha256: String
    }

    let cacheFile: String?
    var entries: [String: Entry] = [:]
    var changed = false

    /// `cacheFile`: where digests persist between commands (nil: this process only). A missing
    /// or unreadable cache is an empty one.
    public init(cacheFile: String? = nil) {
        self.cacheFile = cacheFile
        if let f = cacheFile, let data = FileManager.default.contents(atPath: f),
           let e = try? JSONDecoder().decode([String: Entry].self, from: data) {
            entries = e
        }
    }

    /// The digest of a file or directory; errors name the path.
    public func digest(_ path: String) throws -> String {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw RecipeError("\(path): does not exist") }
        if isDir.boolValue {
            let names = try fm.contentsOfDirectory(atPath: path).sorted()
            let listing = try names.map { "\($0) \(try digest(path + "/" + $0))\n" }.joined()
            return SHA256.hex(Data(listing.utf8))
        }
        let key = URL(fileURLWithPath: path).standardizedFileURL.path
        let attributes = try fm.attributesOfItem(atPath: path)
        let size = (attributes[.size] as? NSNumber)?.intValue ?? -1
        let mtime = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1
        if let e = entries[key], e.size == size, e.mtime == mtime { return e.sha256 }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe) } catch {
            throw RecipeError("\(path): cannot read (\((error as NSError).localizedDescription))")
        }
        let h = SHA256.hex(data)
        entries[key] = Entry(size: size, mtime: mtime, sha256: h)
        changed = true
        return h
    }

    /// Write the cache file if digests were computed since it was read.
    public func save() throws {
        guard let f = cacheFile, changed else { return }
        try FileManager.default.createDirectory(atPath: (f as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try AtomicFile.write(Canonical.json(entries, pretty: true), to: f)
        changed = false
    }
}
