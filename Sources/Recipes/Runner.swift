// Running a recipe's jobs one after another in content-addressed directories:
//
//     <root>/recipes/<recipe>/<kind>-<hash12>/
//         job.json      resolved configuration, recipe, variant, seed, dependency
//         ...           outputs: pretraining's config.json, metrics.jsonl, last.h5;
//                       an evaluator's result.json (+ its own files)
//         done.json     written atomically last: timing, git commit, machine, data hashes
//
// A job with done.json is skipped; a pretraining with last.h5 but no done.json resumes
// (`droplab pretrain --resume`); anything else is started afresh. Ctrl-C during training
// saves last.h5 and stops the run; re-running continues.

import Checkpoint
import Evaluators
import Foundation
import Text
import Training

public struct DoneRecord: Codable, Sendable {
    public struct Machine: Codable, Equatable, Sendable {
        public var cpu: String
        public var cores: Int
        public var os: String
    }
    public var job: String
    public var kind: String
    public var variant: String
    public var seed: UInt64
    public var started: String          // ISO 8601, UTC
    public var finished: String
    public var seconds: Double
    public var resumed: Bool
    public var commit: String
    public var dirty: Bool
    public var machine: Machine
    public var data: [String: String]   // dataset path -> sha256
    public var summary: [String: String]
}

public enum JobState: Equatable {
    case done
    case resumable            // a pretraining with last.h5: continues where it stopped
    case incomplete           // started, nothing to resume: starts afresh
    case pending

    public var label: String {
        switch self {
        case .done: return "done"
        case .resumable: return "partial (resumes)"
        case .incomplete: return "incomplete (restarts)"
        case .pending: return "pending"
        }
    }
}

public struct RecipeInterrupted: Error, CustomStringConvertible {
    public var description: String
}

public final class RecipeRunner {
    public let recipe: Recipe
    public let root: String
    public var log: (String) -> Void
    var dataHashes: [String: String] = [:]
    lazy var provenance = Provenance.current()

    /// `root`: the checkpoints root (job dirs in <root>/recipes/<recipe>/, cache in <root>/cache).
    public init(recipe: Recipe, root: String = "checkpoints", log: @escaping (String) -> Void) {
        self.recipe = recipe; self.root = root; self.log = log
    }

    public var recipeDir: String { root + "/recipes/" + recipe.name }
    public var cacheDir: String { root + "/cache" }
    public func directory(_ job: Job) -> String { recipeDir + "/" + job.dirName }

    public func state(_ job: Job) -> JobState {
        let fm = FileManager.default, dir = directory(job)
        if fm.fileExists(atPath: dir + "/done.json") { return .done }
        if job.kind == Recipe.pretrainKind && fm.fileExists(atPath: dir + "/last.h5") { return .resumable }
        if fm.fileExists(atPath: dir) { return .incomplete }
        return .pending
    }

    /// Jobs matching any pattern, plus the pretraining each selected evaluator needs (if not done).
    /// A pattern is a job name component (`pretrain`, `nodrop`, `seed0`), a job directory name,
    /// or a glob over the name `kind/variant/seedN` (`blimp/*`, `*/nodrop/seed1`).
    public func select(_ patterns: [String]) throws -> [Int] {
        let pats = patterns.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
        guard !pats.isEmpty else { return Array(recipe.jobs.indices) }
        var chosen = Set<Int>()
        for p in pats {
            let hits = recipe.jobs.indices.filter { i in
                let j = recipe.jobs[i]
                if j.dirName == p || j.name == p { return true }
                if j.name.split(separator: "/").contains(Substring(p)) { return true }
                return fnmatch(p, j.name, 0) == 0
            }
            guard !hits.isEmpty else {
                throw RecipeError("--only \(p): matches no job (jobs are named kind/variant/seedN, e.g. \(recipe.jobs[0].name))")
            }
            chosen.formUnion(hits)
        }
        for i in chosen { if let d = recipe.jobs[i].dependsOn, state(recipe.jobs[d]) != .done { chosen.insert(d) } }
        return chosen.sorted()
    }

    /// The job table of `--dry-run`.
    public func listing(_ indices: [Int]) -> String {
        let width = max(20, indices.map { recipe.jobs[$0].name.count }.max() ?? 0)
        let countWidth = String(indices.count).count
        var lines = ["recipe \(recipe.name): \(indices.count) of \(recipe.jobs.count) jobs in \(recipeDir)"]
        if let s = recipe.synthetic {
            let present = FileManager.default.fileExists(atPath: s.out + "/" + SyntheticFacts.manifestFile)
            lines.append("synthetic corpus: \(s.out) (\(present ? "present; checked" : "generated") before the first job runs)")
        }
        var counts: [String: Int] = [:]
        for (k, i) in indices.enumerated() {
            let j = recipe.jobs[i]
            let s = state(j)
            counts[s.label, default: 0] += 1
            let n = String(k + 1).leftPadded(countWidth)
            lines.append("[\(n)/\(indices.count)] \(j.name.padded(width))  \(s.label.padded(21))  \(j.dirName)")
        }
        lines.append(counts.keys.sorted().map { "\(counts[$0]!) \($0)" }.joined(separator: ", "))
        let used = Set(recipe.jobs.map(\.dirName))
        let unused = ((try? FileManager.default.contentsOfDirectory(atPath: recipeDir)) ?? []).filter { !used.contains($0) }.sorted()
        if !unused.isEmpty {
            lines.append("\(unused.count) director\(unused.count == 1 ? "y" : "ies") in \(recipeDir) belong to no job of the recipe as it is now "
                         + "(earlier settings): \(unused.joined(separator: " "))")
        }
        return lines.joined(separator: "\n")
    }

    public struct Summary {
        public var ran = 0
        public var skipped = 0
    }

    /// Run the selected jobs in order; finished jobs are skipped. A [synthetic] corpus is
    /// generated first (or found up to date) when any of them will run.
    public func run(_ indices: [Int]) throws -> Summary {
        var summary = Summary()
        if let s = recipe.synthetic, indices.contains(where: { state(recipe.jobs[$0]) != .done }) {
            do {
                let (status, m) = try SyntheticFacts.write(s, log: log)
                log("synthetic corpus \(s.out): \(status.rawValue) (\(m.counts["facts"] ?? 0) facts, \(m.counts["words"] ?? 0) words)")
            } catch let e as OptionError {
                throw recipe.source.keyError(["synthetic"] + (e.key.map { [$0] } ?? []), e.problem)
            }
        }
        for (k, i) in indices.enumerated() {
            let job = recipe.jobs[i]
            let tag = "[\(k + 1)/\(indices.count)] \(job.name)"
            let s = state(job)
            if s == .done { log("\(tag): done, skipped"); summary.skipped += 1; continue }
            log("\(tag): \(s == .resumable ? "resuming" : "running") in \(directory(job))")
            let started = Date()
            do {
                try runJob(job, resumed: s == .resumable, started: started)
            } catch let e as RecipeInterrupted {
                throw e
            } catch {
                if Interrupt.requested {
                    throw RecipeInterrupted(description: "\(job.name): interrupted; run the recipe again to continue")
                }
                throw RecipeError("\(job.name) (\(directory(job))): \(error)")
            }
            summary.ran += 1
            log(String(format: "%@: done in %@", tag, Self.duration(Date().timeIntervalSince(started))))
        }
        return summary
    }

    func runJob(_ job: Job, resumed: Bool, started: Date) throws {
        let fm = FileManager.default
        let dir = directory(job)
        if !resumed, fm.fileExists(atPath: dir) {
            // nothing to resume from: start afresh (stale metrics would otherwise be appended to)
            for f in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where f != "job.json" { try fm.removeItem(atPath: dir + "/" + f) }
        }
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeJobRecord(job)
        signal(SIGINT, SIG_DFL)     // outside training loops, Ctrl-C stops at once (nothing is marked done)
        var summary: [String: String] = [:]
        var data: [String] = []
        if job.kind == Recipe.pretrainKind {
            var o = job.pretrain
            o.out = dir; o.cacheDir = cacheDir
            let s = try Pretrain.run(o, resume: resumed, log: log)
            if s.reason == .interrupted {
                throw RecipeInterrupted(description: "\(job.name): interrupted at step \(s.steps); last.h5 saved; run the recipe again to resume")
            }
            summary = ["steps": String(s.steps), "tokens": String(s.tokens), "stop": s.reason.rawValue]
            data = (try Pretrain.corpusFiles(o)) + (o.vocab.map { [$0] } ?? [])
        } else {
            guard let e = EvaluatorRegistry.named(job.kind), let p = job.dependsOn else { throw RecipeError("no evaluator '\(job.kind)'") }
            let parent = recipe.jobs[p]
            guard state(parent) == .done else { throw RecipeError("its pretraining \(parent.name) is not done") }
            let ctx = JobContext(directory: dir, cacheDir: cacheDir, seed: job.seed, pretrain: job.pretrain, log: log)
            let result = try e.runJSON(directory(parent) + "/last.h5", job.config, ctx)
            if Interrupt.requested { throw RecipeInterrupted(description: "\(job.name): interrupted; run the recipe again to continue") }
            try AtomicFile.write(result, to: dir + "/result.json")
            data = try e.datasetsJSON(job.config).map(\.path)
        }
        var hashes: [String: String] = [:]
        for path in data { hashes[path] = try dataHash(path) }
        let p = provenance
        let record = DoneRecord(job: job.dirName, kind: job.kind, variant: job.variant, seed: job.seed,
                                started: Self.iso(started), finished: Self.iso(Date()), seconds: Date().timeIntervalSince(started),
                                resumed: resumed, commit: p.commit, dirty: p.dirty, machine: p.machine, data: hashes, summary: summary)
        try AtomicFile.write(Canonical.json(record, pretty: true), to: dir + "/done.json")
    }

    func writeJobRecord(_ job: Job) throws {
        var record: [String: Any] = [
            "recipe": recipe.name, "kind": job.kind, "variant": job.variant,
            "label": recipe.variant(job.variant)?.label ?? job.variant, "seed": job.seed, "hash": job.hash,
            "config": try JSONSerialization.jsonObject(with: job.config),
        ]
        if let d = job.dependsOn { record["dependsOn"] = recipe.jobs[d].dirName }
        try AtomicFile.write(Canonical.json(object: record, pretty: true), to: directory(job) + "/job.json")
    }

    /// sha256 of a file, or of a directory's files (names and contents, sorted); memoized per run.
    func dataHash(_ path: String) throws -> String {
        if let h = dataHashes[path] { return h }
        let fm = FileManager.default
        var isDir: ObjCBool = false
        _ = fm.fileExists(atPath: path, isDirectory: &isDir)
        let h: String
        if isDir.boolValue {
            var listing = ""
            for name in try fm.contentsOfDirectory(atPath: path).sorted() {
                listing += name + " " + (try dataHash(path + "/" + name)) + "\n"
            }
            h = SHA256.hex(Data(listing.utf8))
        } else {
            h = SHA256.hex(try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe))
        }
        dataHashes[path] = h
        return h
    }

    static func iso(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: d)
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t / 60 % 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}

/// Where and from what code jobs ran.
struct Provenance {
    var commit: String
    var dirty: Bool
    var machine: DoneRecord.Machine

    static func current() -> Provenance {
        let commit = shell(["git", "rev-parse", "HEAD"])?.trimmingCharacters(in: .whitespacesAndNewlines)
        let status = commit == nil ? nil : shell(["git", "status", "--porcelain", "--untracked-files=no"])
        var cpu = "unknown"
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            cpu = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var os = "unknown"
        var u = utsname()
        if uname(&u) == 0 {
            func field<T>(_ v: T) -> String {
                withUnsafeBytes(of: v) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            }
            os = field(u.sysname) + " " + field(u.release) + " " + field(u.machine)
        }
        return Provenance(commit: (commit?.isEmpty == false ? commit! : "unknown"), dirty: !(status ?? "").isEmpty,
                          machine: .init(cpu: cpu, cores: ProcessInfo.processInfo.activeProcessorCount, os: os))
    }

    /// stdout of a command, nil when it fails.
    static func shell(_ args: [String]) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out; p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return p.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
    }
}

extension String {
    func padded(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
