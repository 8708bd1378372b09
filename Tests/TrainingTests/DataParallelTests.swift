// Data-parallel pretraining under mpirun (CI runs these; they skip only where mpirun is not
// installed, and `make setup` installs it): 2 ranks x --accumulation 1 against one process
// with --accumulation 2; resume of a 2-rank checkpoint on 1 rank, and the refusal when
// ranks x --accumulation changes; killing a rank ends the job with one line from the other;
// a recipe's pretraining on all ranks (`recipe run --data-parallel`) and its refusal.

import Checkpoint
import Foundation
import TestSupport
import Training
import XCTest

final class DataParallelTests: XCTestCase {
    /// 24 optimizer steps of 2 micro-batches of a tiny model, dropout on, one kernel thread per process.
    func args(_ dir: String, out: String, accumulation: Int, extra: [String] = []) -> [String] {
        ["pretrain", "--corpus", dir + "/corpus.txt", "--vocab", TestData.fixtureVocab, "--preset", "tiny", "--seq-len", "64",
         "--batch", "8", "--tokens", String(24 * 2 * 8 * 64), "--lr", "1e-3", "--warmup", "0.1", "--dropout", "0.1",
         "--val-sequences", "32", "--val-fraction", "0.15", "--log-every", "4", "--eval-every", "12", "--seed", "3",
         "--accumulation", String(accumulation), "--threads", "1", "--cache-dir", dir + "/cache", "--out", out] + extra
    }

    /// The weights of a checkpoint and its training state (step, tokens, data cursor, options).
    func load(_ path: String) throws -> (weights: [Float], state: String) {
        let ck = try Checkpoint.load(path)
        let p = ck.model.params
        return (Array(UnsafeBufferPointer(start: p.values.pointer, count: p.totalCount)), ck.training?.stateJSON ?? "")
    }

    /// Bitwise equal weights (see assertSameMetrics); a failure says how many differ and by how much.
    func assertSameWeights(_ x: [Float], _ y: [Float], file: StaticString = #filePath, line: UInt = #line) {
        let differ = zip(x, y).filter { $0 != $1 }
        XCTAssertTrue(x.count == y.count && differ.isEmpty, "\(differ.count) of \(x.count) weights differ, by up to \(differ.map { abs($0 - $1) }.max() ?? 0)",
                      file: file, line: line)
    }

    /// A run's config.json but its --out.
    func settings(_ run: String) throws -> NSDictionary {
        var o = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/config.json"))) as! [String: Any]
        o["out"] = nil
        return o as NSDictionary
    }

    /// metrics.jsonl without the timing fields (a data-parallel run also logs allreduce_s and step_s).
    func metrics(_ run: String) throws -> [[String: Double]] {
        try MetricsLog.read(run + "/metrics.jsonl").map { $0.filter { !["tokens_per_s", "allreduce_s", "step_s"].contains($0.key) } }
    }

    /// Every metrics field bitwise equal. A step's gradient is each micro-batch's, computed from
    /// zero, summed (Trainer's HeldGradients on one process, the allreduce across ranks); with two
    /// micro-batches that is one float addition g1 + g2 per weight, which is commutative, so one
    /// process with --accumulation 2 and 2 ranks with 1 each (both one kernel thread) take the
    /// same steps to the bit on any CPU and kernel; the losses are likewise one double addition.
    /// (With more than two micro-batches the order of the additions differs and this holds to
    /// rounding only: not tested here.)
    func assertSameMetrics(_ m1: [[String: Double]], _ m2: [[String: Double]], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(m1, m2, file: file, line: line)
    }

    func testTwoRanksEqualOneProcessWithTwiceTheAccumulation() throws {
        let dir = try temporaryDirectory(self)
        _ = try TestData.wikiSample(bytes: 600_000, in: dir)
        let one = try runDroplab(args(dir, out: dir + "/one", accumulation: 2))
        XCTAssertEqual(one.status, 0, one.stderr)
        let two = try runDroplabMPI(ranks: 2, args(dir, out: dir + "/two", accumulation: 1))
        XCTAssertEqual(two.status, 0, two.stderr)
        XCTAssertTrue(two.stderr.contains("data parallel over 2 ranks (1 micro-batches each per step)"), two.stderr)
        XCTAssertEqual(two.stdout.components(separatedBy: "pretrain: 24 steps").count, 2, "rank 0 alone reports: \(two.stdout)")
        let timed = try MetricsLog.read(dir + "/two/metrics.jsonl").filter { $0["train_loss"] != nil }
        XCTAssertTrue(timed.allSatisfy { ($0["allreduce_s"] ?? 0) > 0 && $0["allreduce_s"]! < $0["step_s"]! }, "\(timed)")

        // the same steps over the same data: equal cursor, options and run settings
        let a = try load(dir + "/one/last.h5"), b = try load(dir + "/two/last.h5")
        XCTAssertEqual(a.state, b.state)
        XCTAssertEqual(try settings(dir + "/one"), try settings(dir + "/two"))
        // the same losses and the same weights, bit for bit (see assertSameMetrics)
        assertSameMetrics(try metrics(dir + "/one"), try metrics(dir + "/two"))
        assertSameWeights(a.weights, b.weights)
    }

    /// A 2-rank run's checkpoint of step 12 resumes on one process with --accumulation 2 and
    /// ends where the 2-rank run did, bit for bit; 2 ranks x --accumulation 2 refuse it.
    func testResumeOnAnotherNumberOfRanks() throws {
        let dir = try temporaryDirectory(self), fm = FileManager.default
        _ = try TestData.wikiSample(bytes: 600_000, in: dir)
        let extra = ["--save-every", "6"]
        let two = try runDroplabMPI(ranks: 2, args(dir, out: dir + "/two", accumulation: 1, extra: extra))
        XCTAssertEqual(two.status, 0, two.stderr)
        try fm.copyItem(atPath: dir + "/two", toPath: dir + "/ref")
        try fm.removeItem(atPath: dir + "/two/last.h5")
        try fm.copyItem(atPath: dir + "/two/step-000012.h5", toPath: dir + "/two/last.h5")
        let resumed = try runDroplab(args(dir, out: dir + "/two", accumulation: 2, extra: extra + ["--resume"]))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from \(dir)/two/last.h5 at step 12"), resumed.stderr)
        XCTAssertEqual(try load(dir + "/two/last.h5").state, try load(dir + "/ref/last.h5").state)
        assertSameMetrics(try metrics(dir + "/two"), try metrics(dir + "/ref"))
        assertSameWeights(try load(dir + "/two/last.h5").weights, try load(dir + "/ref/last.h5").weights)

        let before = try Data(contentsOf: URL(fileURLWithPath: dir + "/two/last.h5"))
        let refused = try runDroplabMPI(ranks: 2, args(dir, out: dir + "/two", accumulation: 2, extra: extra + ["--resume"]))
        XCTAssertNotEqual(refused.status, 0)
        let lines = refused.stderr.split(separator: "\n").filter { $0.hasPrefix("droplab: error: ") }
        XCTAssertFalse(lines.isEmpty, refused.stderr)
        for l in lines {
            XCTAssertEqual(l, "droplab: error: --resume: the run takes 2 micro-batches per step, 2 ranks x --accumulation 2 take 4 "
                           + "(ranks x --accumulation must equal 2)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/two/last.h5")), before, "a refused resume changes nothing")
    }

    /// SIGKILL to rank 1 in the middle of training: mpirun ends the job, and rank 0 says so in
    /// one line instead of waiting forever in its next MPI_Allreduce.
    func testKillingARankEndsTheJobWithOneLine() throws {
        let dir = try temporaryDirectory(self)
        _ = try TestData.wikiSample(bytes: 3_000_000, in: dir)
        let p = Process(), err = Pipe()
        p.executableURL = try mpirun()
        p.arguments = mpirunArguments(ranks: 2) + args(dir, out: dir + "/run", accumulation: 1, extra: ["--tokens", String(2000 * 2 * 8 * 64)])
        p.environment = ProcessInfo.processInfo.environment.merging(mpirunEnvironment) { $1 }
        p.standardError = err; p.standardOutput = FileHandle.nullDevice
        try p.run()
        var deadline = Date().addingTimeInterval(300)
        while !FileManager.default.fileExists(atPath: dir + "/run/metrics.jsonl") && p.isRunning && Date() < deadline { usleep(100_000) }
        // mpirun's children are the ranks; rank 1 is the one whose environment says so
        let children = (try? String(contentsOfFile: "/proc/\(p.processIdentifier)/task/\(p.processIdentifier)/children", encoding: .utf8)) ?? ""
        let rank1 = children.split(separator: " ").compactMap { Int32($0) }.first { pid in
            let env = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))) ?? Data()
            return env.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == "OMPI_COMM_WORLD_RANK=1" }
        }
        guard let rank1 else {
            p.terminate(); p.waitUntilExit()
            return XCTFail("no rank 1 among mpirun's children (\(children)); training started: \(p.isRunning)")
        }
        kill(rank1, SIGKILL)
        let killed = Date()
        deadline = killed.addingTimeInterval(60)
        while p.isRunning && Date() < deadline { usleep(100_000) }
        let hung = p.isRunning
        if hung { p.terminate() }
        p.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertFalse(hung, "the job still ran 60 s after a rank was killed: \(stderr)")
        print(String(format: "killed rank 1: the job ended %.1f s later", Date().timeIntervalSince(killed)))
        XCTAssertNotEqual(p.terminationStatus, 0)
        let lines = stderr.split(separator: "\n").filter { $0.hasPrefix("droplab: error: ") }
        XCTAssertEqual(lines, ["droplab: error: rank 0: stopped by SIGTERM (mpirun ends the job when one of its ranks fails or is killed)"], stderr)
    }

    /// `recipe run --data-parallel` on 2 ranks: the pretraining runs on both (2 micro-batches a
    /// step, one each) and ends where one process does, to the bound; its evaluator then runs on
    /// rank 1; a re-run finds both done. 3 ranks refuse the recipe before anything starts.
    func testRecipePretrainingOnAllRanks() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try TestData.wikiSample(bytes: 600_000, in: dir)
        let recipe = dir + "/dp.toml"
        try """
            title = "data parallel"
            seeds = [3]
            [pretrain]
            preset = "tiny"
            corpus = ["\(corpus)"]
            vocab = "\(TestData.fixtureVocab)"
            tokens = \(24 * 2 * 8 * 64)
            seq-len = 64
            batch = 8
            accumulation = 2
            lr = 1e-3
            warmup = 0.1
            val-fraction = 0.15
            val-sequences = 32
            eval-every = 12
            log-every = 4
            [variants.drop]
            dropout = 0.1
            [evaluators.mlm]
            sequences = 32
            """.write(toFile: recipe, atomically: true, encoding: .utf8)
        let one = try runDroplab(["recipe", "run", recipe, "--root", dir + "/one", "--threads", "1"])
        XCTAssertEqual(one.status, 0, one.stderr)
        let two = try runDroplabMPI(ranks: 2, ["recipe", "run", recipe, "--root", dir + "/two", "--threads", "1", "--data-parallel"])
        XCTAssertEqual(two.status, 0, two.stderr)
        XCTAssertTrue(two.stderr.contains("pretrain/drop/seed3: running on all 2 ranks in"), two.stderr)
        XCTAssertTrue(two.stderr.contains("data parallel over 2 ranks (1 micro-batches each per step)"), two.stderr)
        XCTAssertTrue(two.stderr.contains("mlm/drop/seed3: running on rank 1 in"), two.stderr)
        XCTAssertTrue(two.stdout.contains("2 jobs: 2 run, 0 already done"), two.stdout)

        func job(_ root: String, _ kind: String) throws -> String {
            let jobs = root + "/recipes/dp"
            let name = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: jobs).first { $0.hasPrefix(kind + "-") })
            XCTAssertTrue(FileManager.default.fileExists(atPath: jobs + "/" + name + "/done.json"), name)
            return jobs + "/" + name
        }
        let p1 = try job(dir + "/one", "pretrain"), p2 = try job(dir + "/two", "pretrain")
        XCTAssertEqual((p1 as NSString).lastPathComponent, (p2 as NSString).lastPathComponent, "the same job")
        XCTAssertEqual(try load(p1 + "/last.h5").state, try load(p2 + "/last.h5").state)
        assertSameMetrics(try metrics(p1), try metrics(p2))
        assertSameWeights(try load(p1 + "/last.h5").weights, try load(p2 + "/last.h5").weights)
        let r1 = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: try job(dir + "/one", "mlm") + "/result.json"))) as! [String: Any]
        let r2 = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: try job(dir + "/two", "mlm") + "/result.json"))) as! [String: Any]
        let loss1 = (r1["metrics"] as? [String: Any])?["loss"] as? Double, loss2 = (r2["metrics"] as? [String: Any])?["loss"] as? Double
        // the same weights, so the same mlm evaluator loss
        XCTAssertEqual(try XCTUnwrap(loss1), try XCTUnwrap(loss2))

        let rerun = try runDroplabMPI(ranks: 2, ["recipe", "run", recipe, "--root", dir + "/two", "--threads", "1", "--data-parallel"])
        XCTAssertTrue(rerun.stdout.contains("2 jobs: 0 run, 2 already done"), rerun.stdout + rerun.stderr)

        let three = try runDroplabMPI(ranks: 3, ["recipe", "run", recipe, "--root", dir + "/three", "--threads", "1", "--data-parallel"])
        XCTAssertNotEqual(three.status, 0)
        // every rank refuses alike; a rank still checking when the first one exits is ended by
        // mpirun and says that instead (its own one line)
        let refusal = "droplab: error: --data-parallel: pretrain/drop/seed3 takes 2 micro-batches per step (accumulation), which do not divide over 3 ranks"
        let lines = three.stderr.split(separator: "\n").filter { $0.hasPrefix("droplab: error: ") }
        XCTAssertTrue(lines.contains { $0 == refusal }, three.stderr)
        for l in lines where l != refusal {
            XCTAssertTrue(l.hasPrefix("droplab: error: rank ") && l.hasSuffix("stopped by SIGTERM (mpirun ends the job when one of its ranks fails or is killed)"), String(l))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/three/recipes/dp"), "nothing started")
    }
}
