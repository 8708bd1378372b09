// Running a recipe's jobs one after another in content-addressed directories:
//
//     <root>/recipes/<recipe>/<kind>-<hash12>/
//         job.json      resolved configuration, recipe, variant, seed, dependency
//         ...           outputs: pretraining's config.json, metrics.jsonl, last.h5;
//                       an evaluator's result.json (+ its own files)
//         done.json     written atomically last: timing, code version (source hash and git
//                       commit baked in at build time), machine, data digests
//
// A job with done.json is skipped; a pretraining with last.h5 but no done.json resumes
// (`droplab pretrain --resume`, with the logging options it was started with); anything else
// is started afresh. Ctrl-C during training saves last.h5 and stops the run; re-running
// continues. Under mpirun (`run(_:world:)`, more than one rank), rank 0 keeps the queue and
// the display and hands each job to a free rank 1...N-1 (`serve`), an evaluator once its
// pretraining is done; a job that fails is reported and the others go on. With
// `dataParallel`, each pretraining runs first on all ranks together (`Pretrain.run` with the
// world: the job's micro-batches of a step are divided among the ranks) and the evaluators are
// then spread as above; the ranks of a data-parallel job are bound together, so its failure
// ends the mpirun job (re-running resumes).

import Autograd
import Checkpoint
import Datasets
import Evaluators
import Foundation
import Text
import Training

public struct DoneRecord: Codable, Sendable {
    public struct Machine: Codable, Equatable, Sendable {
        public var cpu: String
        public var cores: Int
        public var os: String
        /// The CPU's vector ISA levels ("AVX2, AVX-512, AVX512-BF16") and OpenBLAS's kernel
        /// ("Cooperlake"): two machines whose CPUs share a model name ("AMD EPYC") can differ in
        /// both, and so in their products' rounding. nil in records written before they were kept.
        public var features: String?
        public var blas: String?
        /// The job's kernel threads (a job sharing the machine with others runs on fewer than its cores).
        public var threads: Int?
        /// "family 25, model 17": CPUs of one model name and ISA summary can still be different
        /// generations (an AMD EPYC Zen 4 and Zen 5). nil in records written before it was kept.
        public var id: String?

        /// Whether two jobs surely ran on different kinds of CPU or kernels (unknown for older records).
        public func differs(from other: Machine) -> Bool {
            features != nil && other.features != nil && (cpu, features, blas) != (other.cpu, other.features, other.blas)
                || id != nil && other.id != nil && id != other.id
        }

        /// "AMD EPYC (family 25, model 17; AVX2, AVX-512, AVX512-BF16; OpenBLAS Cooperlake), 2 cores, 1 kernel thread, Linux 6.18 x86_64".
        public var description: String {
            let kernel = features.map { f in " (" + (id.map { "\($0); " } ?? "") + f + (blas.map { "; OpenBLAS \($0)" } ?? "") + ")" } ?? " (CPU features not recorded)"
            return "\(cpu)\(kernel), \(cores) cores, " + (threads.map { "\(counted($0, "kernel thread")), " } ?? "") + os
        }
    }
    public var job: String
    public var kind: String
    public var variant: String?         // nil: a command-line run (`droplab eval`)
    public var seed: UInt64?
    public var started: String          // ISO 8601, UTC
    public var finished: String
    public var seconds: Double
    public var resumed: Bool
    public var code: String?            // sha256 of the sources built (BuildInfo); nil: written before it was recorded
    public var commit: String           // git commit at build time ("unknown" without git)
    public var dirty: Bool
    public var machine: Machine
    public var data: [String: String]   // dataset path -> sha256
    public var summary: [String: String]
    /// A pretraining run again where its committed copy was done: whether it made the same model.
    public var reproduces: Reproduction? = nil
}

/// A pretraining run again while a committed copy of it is done (on another machine, or after
/// its checkpoint was lost): whether the two runs made the same model, so that evaluators run
/// against either evaluated one model.
public struct Reproduction: Codable, Equatable, Sendable {
    /// The committed copy's directory, machine and finishing time.
    public var copy: String
    public var machine: DoneRecord.Machine
    public var finished: String
    /// "weights": both records carry the sha256 of the final parameters (`summary.weights`),
    /// which decide; "metrics": the committed copy predates that digest, so every logged metric
    /// but throughput was compared as logged (6 significant digits).
    public var compared: String
    public var identical: Bool
    /// Logged steps compared, and the final validation loss of the copy and of this run.
    public var steps: Int
    public var finalValLoss: [Double]

    /// Compare the pretraining in `dir` (its final weights' digest `weights`) with its committed copy.
    static func compare(copy: String, record: DoneRecord, here dir: String, weights: String) throws -> Reproduction {
        let old = try MetricsLog.read(copy + "/metrics.jsonl"), new = try MetricsLog.read(dir + "/metrics.jsonl")
        func untimed(_ m: [String: Double]) -> [String: Double] { m.filter { $0.key != "tokens_per_s" } }
        let sameMetrics = old.count == new.count && zip(old, new).allSatisfy { untimed($0) == untimed($1) }
        let final = [old, new].map { log in log.last { $0["val_loss"] != nil }?["val_loss"] ?? .nan }
        let digest = record.summary["weights"]
        return Reproduction(copy: copy, machine: record.machine, finished: record.finished, compared: digest == nil ? "metrics" : "weights",
                            identical: digest.map { $0 == weights } ?? sameMetrics, steps: min(old.count, new.count), finalValLoss: final)
    }

    /// "the same model as the committed copy (...)" or how it differs, for the log and the report.
    public var description: String {
        let basis = compared == "weights" ? "identical final weights (sha256)"
            : "every logged metric but throughput equal at all \(steps) logged steps (as logged; the copy has no weight digest)"
        return identical ? "the same model as its committed copy \(copy) (\(machine.description), finished \(finished)): \(basis)"
            : "**not** the model of its committed copy \(copy) (\(machine.description), finished \(finished)): "
              + (compared == "weights" ? "the final weights differ" : "the logged metrics differ")
              + String(format: ", final validation loss %.6g there, %.6g here", finalValLoss[0], finalValLoss[1])
    }
}

extension DoneRecord {
    /// The record of a job finished now: timing, the code version baked in at build time, the machine.
    static func finished(job: String, kind: String, variant: String?, seed: UInt64?, started: Date, resumed: Bool,
                         machine: Machine = Provenance.current().machine, data: [String: String], summary: [String: String]) -> DoneRecord {
        DoneRecord(job: job, kind: kind, variant: variant, seed: seed, started: RecipeRunner.iso(started), finished: RecipeRunner.iso(Date()),
                   seconds: Date().timeIntervalSince(started), resumed: resumed, code: BuildInfo.sourceHash, commit: BuildInfo.commit,
                   dirty: BuildInfo.dirty, machine: machine, data: data, summary: summary)
    }
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
    lazy var provenance = Provenance.current()

    let jobs: String?

    /// `root`: the checkpoints root (job dirs in <root>/recipes/<recipe>/, cache in <root>/cache).
    /// `jobs`: read the job directories from there instead (the copies `report --save-jobs` keeps).
    public init(recipe: Recipe, root: String = "checkpoints", jobs: String? = nil, log: @escaping (String) -> Void) {
        self.recipe = recipe; self.root = root; self.jobs = jobs; self.log = log
    }

    public var recipeDir: String { jobs ?? root + "/recipes/" + recipe.name }
    public var cacheDir: String { root + "/cache" }
    /// The committed copies (`recipe run --reports`): a pretraining done there and run again here
    /// is compared with its copy (`DoneRecord.reproduces`).
    public var committed: RecipeRunner? = nil
    /// The digest cache of a checkpoints root (DataDigests).
    public static func digestCache(root: String) -> String { root + "/cache/data-digests.json" }

    /// The job's directory.
    public func directory(_ job: Job) -> String { recipeDir + "/" + job.dirName }

    /// The code version that made a finished job, when it is not the running code's (nil when
    /// it is, or the job is not done): "older code", or "unrecorded code" for records written
    /// before code versions were.
    public func olderCode(_ job: Job) -> String? {
        guard let done = try? doneRecord(job) else { return nil }
        guard let code = done.code else { return "unrecorded code" }
        return code == BuildInfo.sourceHash ? nil : "older code"
    }

    /// A finished job's done.json.
    func doneRecord(_ job: Job) throws -> DoneRecord {
        try JSONDecoder().decode(DoneRecord.self, from: Data(contentsOf: URL(fileURLWithPath: directory(job) + "/done.json")))
    }

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
    /// The jobs' states, one line each. `committed`: a runner on the committed copies
    /// (reports/<recipe>-jobs): a job not done here but there is marked, since running it here
    /// would redo work done on another machine.
    public func listing(_ indices: [Int], committed: RecipeRunner? = nil) -> String {
        let width = max(20, indices.map { recipe.jobs[$0].name.count }.max() ?? 0)
        let countWidth = String(indices.count).count
        var lines = ["recipe \(recipe.name): \(indices.count) of \(recipe.jobs.count) jobs in \(recipeDir)"]
        if let g = recipe.generated {
            let present = FileManager.default.fileExists(atPath: g.manifest)
            lines.append("\(g.table) corpus: \(g.out) (\(present ? "present; checked" : "generated") before the first job runs)")
        }
        var counts: [String: Int] = [:], copies = 0
        for (k, i) in indices.enumerated() {
            let j = recipe.jobs[i]
            var label = state(j).label
            if let older = olderCode(j) { label += " (\(older))" }
            counts[label, default: 0] += 1
            if state(j) != .done, let c = committed, c.state(j) == .done { label += ", done in \(c.recipeDir) (committed copy)"; copies += 1 }
            let n = String(k + 1).leftPadded(countWidth)
            lines.append("[\(n)/\(indices.count)] \(j.name.padded(width))  \(label.padded(21))  \(j.dirName)")
        }
        lines.append(counts.keys.sorted().map { "\(counts[$0]!) \($0)" }.joined(separator: ", "))
        if copies > 0, let c = committed {
            lines.append("\(copies) of these jobs are done in the committed copies (\(c.recipeDir)), on another machine: running them here "
                         + "redoes them (a pretraining is then compared with its copy: the same model or not), and the next report --save-jobs replaces those copies; --only can leave them out")
        }
        let used = Set(recipe.jobs.map(\.dirName))
        let unused = ((try? FileManager.default.contentsOfDirectory(atPath: recipeDir)) ?? []).filter { !used.contains($0) }.sorted()
        if !unused.isEmpty {
            lines.append("\(unused.count == 1 ? "1 directory" : "\(unused.count) directories") in \(recipeDir) \(unused.count == 1 ? "belongs" : "belong") to no job of the recipe as it is now "
                         + "(earlier settings): \(unused.joined(separator: " "))")
        }
        return lines.joined(separator: "\n")
    }

    public struct Summary {
        public var ran = 0
        public var skipped = 0
    }

    /// Run the selected jobs in order; finished jobs are skipped. The data digests computed
    /// are cached for the next command. A
    /// generated corpus ([synthetic], [facts]) is written first (or found up to date) when any job will run.
    /// `world` (rank 0 of more than one): the jobs run on the other ranks (`dispatch`), the
    /// pretrainings on all of them together when `dataParallel`. Either way a job that fails is
    /// logged and the others go on (the evaluators of a failed pretraining are not started); the
    /// run fails at the end, naming the failed jobs. An interrupt stops at once.
    public func run(_ indices: [Int], world: MPIWorld? = nil, dataParallel: Bool = false) throws -> Summary {
        try recipe.digests.save()
        var summary = Summary()
        if let g = recipe.generated, indices.contains(where: { state(recipe.jobs[$0]) != .done }) {
            do {
                log(try g.write(log: log))
            } catch let e as OptionError {
                throw recipe.source.keyError([g.table] + (e.key.map { [$0] } ?? []), e.problem)
            }
        }
        if let world, world.size > 1 { return try dispatch(indices, world: world, dataParallel: dataParallel) }
        var failed: [Int] = []
        for (k, i) in indices.enumerated() {
            let job = recipe.jobs[i]
            let tag = "[\(k + 1)/\(indices.count)] \(job.name)"
            let s = state(job)
            if s == .done { log("\(tag): done, skipped"); summary.skipped += 1; continue }
            if let d = job.dependsOn, failed.contains(d) { log(notRun(tag, pretraining: d)); failed.append(i); continue }
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
                log("\(tag): failed (\(directory(job))): \(error)")
                failed.append(i); continue
            }
            summary.ran += 1
            log(String(format: "%@: done in %@", tag, Self.duration(Date().timeIntervalSince(started))))
        }
        try checkNoneFailed(failed, of: indices.count)
        return summary
    }

    /// The log line of a job left out because its pretraining failed.
    func notRun(_ tag: String, pretraining d: Int) -> String { "\(tag): not run: its pretraining \(recipe.jobs[d].name) failed" }

    /// The run's error when any job failed: how many, and which.
    func checkNoneFailed(_ failed: [Int], of total: Int) throws {
        guard failed.isEmpty else {
            throw RecipeError("\(failed.count) of \(total) jobs failed: " + failed.map { recipe.jobs[$0].name }.joined(separator: ", "))
        }
    }

    enum Message: Int { case job = 1, stop, result, together }

    /// Rank 0's queue: each job not done goes, in order, to the next free rank once its
    /// pretraining (when it is one of these jobs) has finished; a failed job is reported and
    /// the others go on (its evaluators are not started); the run fails at the end if any did.
    func dispatch(_ indices: [Int], world: MPIWorld, dataParallel: Bool) throws -> Summary {
        var summary = Summary(), queue: [Int] = [], failed: [Int] = []
        var free = Array(1..<world.size), running: [Int: (k: Int, started: Date)] = [:]
        func tag(_ k: Int) -> String { "[\(k + 1)/\(indices.count)] \(recipe.jobs[indices[k]].name)" }
        for k in indices.indices {
            if state(recipe.jobs[indices[k]]) == .done { log("\(tag(k)): done, skipped"); summary.skipped += 1 } else { queue.append(k) }
        }
        if dataParallel {
            let together = queue.filter { recipe.jobs[indices[$0]].kind == Recipe.pretrainKind }
            for k in together {
                let job = recipe.jobs[indices[k]], resumed = state(job) == .resumable, started = Date()
                log("\(tag(k)): \(resumed ? "resuming" : "running") on all \(world.size) ranks in \(directory(job))")
                for rank in 1..<world.size { try world.send(Array("\(indices[k]) \(resumed)".utf8), to: rank, tag: Message.together.rawValue) }
                try runJob(job, resumed: resumed, started: started, world: world)
                for _ in 1..<world.size { _ = try world.receive() }   // each rank's "finished"
                summary.ran += 1
                log(String(format: "%@: done in %@", tag(k), Self.duration(Date().timeIntervalSince(started))))
            }
            queue.removeAll { together.contains($0) }
        }
        while !queue.isEmpty || !running.isEmpty {
            var q = 0
            while !free.isEmpty && q < queue.count {
                let k = queue[q], job = recipe.jobs[indices[k]]
                if let d = job.dependsOn, failed.contains(d) {
                    log(notRun(tag(k), pretraining: d))
                    failed.append(indices[k]); queue.remove(at: q); continue
                }
                if let d = job.dependsOn, (queue + running.values.map(\.k)).contains(where: { indices[$0] == d }) { q += 1; continue }
                let rank = free.removeFirst()
                log("\(tag(k)): \(state(job) == .resumable ? "resuming" : "running") on rank \(rank) in \(directory(job))")
                try world.send(Array(String(indices[k]).utf8), to: rank, tag: Message.job.rawValue)
                running[rank] = (k, Date()); queue.remove(at: q)
            }
            guard !running.isEmpty else { break }
            let m = try world.receive()
            guard let (k, started) = running.removeValue(forKey: m.source) else { continue }
            free.append(m.source)
            if m.bytes.isEmpty {
                summary.ran += 1
                log(String(format: "%@: done in %@", tag(k), Self.duration(Date().timeIntervalSince(started))))
            } else {
                failed.append(indices[k])
                log("\(tag(k)): failed on rank \(m.source) (\(directory(recipe.jobs[indices[k]]))): \(String(decoding: m.bytes, as: UTF8.self))")
            }
        }
        for rank in 1..<world.size { try world.send([], to: rank, tag: Message.stop.rawValue) }
        try checkNoneFailed(failed, of: indices.count)
        return summary
    }

    /// Every rank checks before any job starts that the recipe's pretrainings divide their
    /// micro-batches over `ranks` (all of them then fail alike, and none waits for another).
    public static func checkDataParallel(_ recipe: Recipe, ranks: Int) throws {
        for job in recipe.jobs where job.kind == Recipe.pretrainKind && job.pretrain.accumulation % ranks != 0 {
            throw RecipeError("--data-parallel: \(job.name) takes \(job.pretrain.accumulation) micro-batches per step (accumulation), "
                              + "which do not divide over \(ranks) ranks")
        }
    }

    /// A rank other than 0: run the jobs rank 0 sends, answer each with its error ("" when it
    /// finished), until told to stop. A data-parallel pretraining's error is this rank's own
    /// (it ends the mpirun job).
    public func serve(_ world: MPIWorld) throws {
        while true {
            let m = try world.receive()
            if m.tag == Message.together.rawValue {
                let parts = String(decoding: m.bytes, as: UTF8.self).split(separator: " ")
                guard parts.count == 2, let i = Int(parts[0]) else { return }
                try runJob(recipe.jobs[i], resumed: parts[1] == "true", started: Date(), world: world)
                try world.send([], to: 0, tag: Message.result.rawValue)
                continue
            }
            guard m.tag == Message.job.rawValue, let i = Int(String(decoding: m.bytes, as: UTF8.self)) else { return }
            var error = ""
            do { try runJob(recipe.jobs[i], resumed: state(recipe.jobs[i]) == .resumable, started: Date()) } catch let e { error = "\(e)" }
            try world.send(Array(error.utf8), to: 0, tag: Message.result.rawValue)
        }
    }

    /// `world`: a pretraining run data parallel on all its ranks; rank 0 alone prepares the
    /// directory and writes the records.
    func runJob(_ job: Job, resumed: Bool, started: Date, world: MPIWorld? = nil) throws {
        let fm = FileManager.default
        let dir = directory(job), leader = (world?.rank ?? 0) == 0
        if leader {
            if !resumed, fm.fileExists(atPath: dir) {
                // nothing to resume from: start afresh (stale metrics would otherwise be appended to)
                for f in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where f != "job.json" { try fm.removeItem(atPath: dir + "/" + f) }
            }
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try writeJobRecord(job)
        }
        try world?.barrier()   // the other ranks start once the directory is ready
        signal(SIGINT, SIG_DFL)     // outside training loops, Ctrl-C stops at once (nothing is marked done)
        var summary: [String: String] = [:]
        if job.kind == Recipe.pretrainKind {
            var o = job.pretrain
            o.out = dir; o.cacheDir = cacheDir
            if resumed { o = try Self.loggingOptions(of: dir + "/config.json", into: o) }
            let s = try Pretrain.run(o, resume: resumed, world: world, log: log)
            if s.reason == .interrupted {
                throw RecipeInterrupted(description: "\(job.name): interrupted at step \(s.steps); last.h5 saved; run the recipe again to resume")
            }
            summary = ["steps": String(s.steps), "tokens": String(s.tokens), "stop": s.reason.rawValue]
        } else {
            guard let e = EvaluatorRegistry.named(job.kind), let p = job.dependsOn else { throw RecipeError("no evaluator '\(job.kind)'") }
            let parent = recipe.jobs[p]
            guard state(parent) == .done else { throw RecipeError("its pretraining \(parent.name) is not done") }
            let ctx = JobContext(directory: dir, cacheDir: cacheDir, log: log)
            let result = try e.runJSON(directory(parent) + "/last.h5", job.config, ctx)
            if Interrupt.requested { throw RecipeInterrupted(description: "\(job.name): interrupted; run the recipe again to continue") }
            try AtomicFile.write(result, to: dir + "/result.json")
        }
        guard leader else { return }
        var hashes: [String: String] = [:]
        for path in job.data { hashes[path] = try recipe.digests.digest(path) }
        var reproduction: Reproduction? = nil
        if job.kind == Recipe.pretrainKind {
            let weights = try Checkpoint.load(dir + "/last.h5").model.params.values
            summary["weights"] = SHA256.hex(Data(bytesNoCopy: weights.pointer, count: weights.count * MemoryLayout<Float>.size, deallocator: .none))
            if let c = committed, c.state(job) == .done, let record = try? c.doneRecord(job) {
                reproduction = try Reproduction.compare(copy: c.directory(job), record: record, here: dir, weights: summary["weights"]!)
                log("\(job.name): " + reproduction!.description.replacingOccurrences(of: "**", with: ""))
            }
        }
        var record = DoneRecord.finished(job: job.dirName, kind: job.kind, variant: job.variant, seed: job.seed, started: started,
                                         resumed: resumed, machine: provenance.machine, data: hashes, summary: summary)
        record.reproduces = reproduction
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

    /// `o` with the logging options (Recipe.loggingKeys) of the run's config.json: a resumed
    /// pretraining keeps those it was started with, whatever the recipe says now (they are not
    /// part of the job's identity, and `pretrain --resume` requires the same settings).
    static func loggingOptions(of configFile: String, into o: PretrainOptions) throws -> PretrainOptions {
        guard let data = FileManager.default.contents(atPath: configFile),
              let stored = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw RecipeError("\(configFile): cannot read the run's settings to resume it")
        }
        var merged = try JSONSerialization.jsonObject(with: JSONEncoder().encode(o)) as! [String: Any]
        for k in Recipe.loggingKeys { merged[k] = stored[k] }
        return try JSONDecoder().decode(PretrainOptions.self, from: JSONSerialization.data(withJSONObject: merged))
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

/// The machine jobs run on (the code version is BuildInfo's, baked in at build time).
struct Provenance {
    var machine: DoneRecord.Machine

    static func current() -> Provenance {
        var os = "unknown"
        var u = utsname()
        if uname(&u) == 0 {
            func field<T>(_ v: T) -> String {
                withUnsafeBytes(of: v) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            }
            os = field(u.sysname) + " " + field(u.release) + " " + field(u.machine)
        }
        let cpu = Autograd.Machine.cpu
        return Provenance(machine: .init(cpu: cpu.model, cores: ProcessInfo.processInfo.activeProcessorCount, os: os,
                                         features: cpu.isaSummary, blas: Autograd.Machine.openBLASCore, threads: Parallel.threads,
                                         id: cpu.identity))
    }
}

extension String {
    func padded(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
