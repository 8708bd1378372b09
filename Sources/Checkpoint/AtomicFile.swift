// Durable atomic replacement of a file: the new bytes go to `.<name>.tmp-<pid>` in the
// destination's directory, are fsynced, renamed over the destination, and the directory is
// fsynced. After a crash, a kill or a full disk the destination holds the old or the new
// bytes, never a mix. Temporary files of killed processes are removed by `removeStale`.

import Foundation

public enum AtomicFile {
    /// The temporary name used while `path` is being written by this process.
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().path + "/.\(url.lastPathComponent).tmp-\(getpid())"
    }

    /// Replace `path` with `data`, durably.
    public static func write(_ data: Data, to path: String) throws {
        let tmp = temporaryPath(for: path)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CheckpointError(path, "cannot write (\(String(cString: strerror(errno))))") }
        var failure: Int32 = 0
        data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count && failure == 0 {
                let n = Foundation.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 { if errno != EINTR { failure = errno } } else { done += n }
            }
        }
        if close(fd) != 0 && failure == 0 { failure = errno }
        if failure != 0 {
            unlink(tmp)
            throw CheckpointError(path, "cannot write (\(String(cString: strerror(failure))))")
        }
        try commit(tmp, to: path)
    }

    /// Make the complete temporary file `tmp` the file `path`: fsync it, rename it into
    /// place, fsync the directory. `tmp` is removed on failure.
    public static func commit(_ tmp: String, to path: String) throws {
        func fail(_ what: String) -> CheckpointError {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            return CheckpointError(path, "\(what) (\(reason))")
        }
        let fd = open(tmp, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("cannot reopen the temporary file") }
        let synced = fsync(fd) == 0
        close(fd)
        guard synced else { throw fail("cannot flush to disk") }
        guard rename(tmp, path) == 0 else { throw fail("cannot rename into place") }
        let dir = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else { throw CheckpointError(path, "cannot open its directory to flush it (\(String(cString: strerror(errno))))") }
        defer { close(dir) }
        guard fsync(dir) == 0 else { throw CheckpointError(path, "cannot flush its directory (\(String(cString: strerror(errno))))") }
    }

    /// Fails unless `dir` is, or can be created as, a writable directory; creates nothing.
    /// `flag` names the option that chose it.
    public static func checkWritableDirectory(_ dir: String, flag: String) throws {
        var path = URL(fileURLWithPath: dir).standardizedFileURL.path
        var isDir: ObjCBool = false
        while !FileManager.default.fileExists(atPath: path, isDirectory: &isDir) { path = (path as NSString).deletingLastPathComponent }
        guard isDir.boolValue else {
            throw CheckpointError(dir, path == URL(fileURLWithPath: dir).standardizedFileURL.path
                                  ? "is a file, not a directory (\(flag))" : "cannot be created: \(path) is a file (\(flag))")
        }
        guard access(path, W_OK) == 0 else { throw CheckpointError(dir, "cannot be created: \(path) is not writable (\(flag))") }
    }

    /// Delete the temporary files in `dir` left by processes that no longer run.
    public static func removeStale(in dir: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix(".") {
            guard let r = name.range(of: ".tmp-", options: .backwards), let pid = Int32(name[r.upperBound...]) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { unlink(dir + "/" + name) }
        }
    }
}
