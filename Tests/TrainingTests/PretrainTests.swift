// End-to-end pretraining through the CLI: loss falls, resume after SIGKILL reproduces the
// uninterrupted run exactly, SIGINT saves and exits 0, bad input gives one-line errors; the
// init, data and dropout seeds each do their own part; logging options change no weight.

import Autograd
import BERT
import Checkpoint
import Foundation
import TestSupport
import Text
@testable import Training
import XCTest

final class PretrainTests: XCTestCase {
    /// Common flags for a small, fast run on real text with the fixture vocabulary.
    func args(_ dir: String, corpus: String, out: String, tokens: Int, extra: [String] = []) -> [String] {
        ["pretrain", "--corpus", corpus, "--vocab", TestData.fixtureVocab, "--preset", "tiny", "--seq-len", "64",
         "--batch", "8", "--tokens", String(tokens), "--lr", "1e-3", "--warmup", "0.1", "--dropout", "0.1",
         "--val-sequences", "32", "--val-fraction", "0.15", "--log-every", "5", "--cache-dir", dir + "/cache", "--out", out] + extra
    }

    /// The run's metrics lines (none before its first log line).
    func metrics(_ run: String) throws -> [[String: Any]] {
        guard FileManager.default.fileExists(atPath: run + "/metrics.jsonl") else { return [] }
        return try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    func testLossFallsWellBelowUniform() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try TestData.wikiSample(bytes: 3_000_000, in: dir)
        let r = try runDroplab(args(dir, corpus: corpus, out: dir + "/run", tokens: 300 * 1024,
                                    extra: ["--eval-every", "60", "--dropout", "0.0", "--batch", "16", "--lr", "2e-3", "--warmup", "0.05"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        let m = try metrics(dir + "/run")
        let val = m.compactMap { $0["val_loss"] as? Double }
        let vocabSize = try String(contentsOfFile: TestData.fixtureVocab, encoding: .utf8).split(separator: "\n").count
        print("pretrain tiny: validation loss \(val) (ln V = \(log(Double(vocabSize))))")
        XCTAssertGreaterThanOrEqual(val.count, 4)
        // Margins on the run's outcome, which is the same on every OpenBLAS kernel (the validation losses
        // agree to 1e-5 on Cooperlake, Haswell and Prescott): measured 7.081, 6.901, 6.818, 6.740, 6.697,
        // so 0.18 nats below both ln V - 1.5 = 6.87 and first - 0.2 = 6.88, and the smallest fall between
        // evaluations (0.042) is 4000x the kernels' difference.
        // 300 steps take a tiny model through the unigram plateau (about 6.7 nats here)
        XCTAssertLessThan(val.last!, log(Double(vocabSize)) - 1.5, "validation loss should fall well below ln(V)")
        XCTAssertLessThan(val.last!, val.first! - 0.2)
        XCTAssertEqual(val, val.sorted(by: >), "validation loss should fall at every evaluation")
        XCTAssertTrue(r.stdout.contains("token budget reached"), r.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/run/last.h5"))
        // the run dir records the dropout in force and the resolved config
        XCTAssertEqual(m.last?["hidden_dropout"] as? Double, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/run/config.json"))

        // eval mlm on the same held-out sequences and masks reproduces the final validation loss
        let e = try runDroplab(["eval", "mlm", dir + "/run/last.h5", "--corpus", corpus, "--seq-len", "128", "--sequences", "32",
                                "--val-fraction", "0.15", "--cache-dir", dir + "/cache", "--results", dir + "/results"])
        XCTAssertEqual(e.status, 0, e.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: resultsDirectory(e) + "/result.json"))) as! [String: Any]
        let metrics = json["metrics"] as! [String: Any]
        print("pretrain tiny: eval mlm loss \(metrics["loss"] ?? "-"), accuracy \(metrics["accuracy"] ?? "-"), masked tokens \(metrics["maskedTokens"] ?? "-")")
        // The same sequences and masks in other batch shapes (other GEMM summation orders): logits
        // differ by RMS √2 u √(14 * 512 / 6) |z| ~ 3e-6 * 15 = 4e-5 (tiny: 14 stages, K <= 512;
        // Tolerances.swift), a token's loss by ~√2 that, the mean over 579 masked tokens by 2.5e-6:
        // 1e-4 is 40 RMS.
        XCTAssertEqual(metrics["loss"] as! Double, val.last!, accuracy: 1e-4)
        // exp of the same Double (JSON round-trips a Double exactly): equal to its last bit
        XCTAssertEqual(metrics["perplexity"] as! Double, exp(metrics["loss"] as! Double), accuracy: 1e-6)
        // an outcome (the same on every kernel, as above): measured 0.069, 11 of 579 tokens above 0.05;
        // the token count is integer arithmetic
        XCTAssertGreaterThan(metrics["accuracy"] as! Double, 0.05)
        XCTAssertGreaterThan(metrics["maskedTokens"] as! Int, 200)
    }

    /// --precision bf16: the run of testLossFallsWellBelowUniform (tiny, 300 steps of 16x64
    /// tokens, validation every 60 steps) in bf16 and in fp32 on the same data and initial weights.
    /// bf16 rounding (u = 2^-8) perturbs every step; no bound relates that to the gap between two
    /// 300-step training curves, so the gap is compared with a reference perturbation of the same
    /// run: fp32 with another --data-seed (other batches and masks, the same initial weights and
    /// validation set). bf16's largest gap over the 5 evaluations must stay below that run's largest
    /// gap (measured on Zen 4: 0.0068 vs 0.042 nats): a model trained in bf16 follows fp32 more closely than
    /// fp32 follows itself on other data, while both fall below ln V - 1.5 as in
    /// testLossFallsWellBelowUniform. A bf16 run's metrics lines and checkpoint record its
    /// precision, and --resume refuses to change it.
    func testBF16TrainingCurveFollowsFP32() throws {
        try XCTSkipUnless(BF16.isSupported, "no AVX512-BF16")
        let dir = try temporaryDirectory(self)
        let corpus = try TestData.wikiSample(bytes: 3_000_000, in: dir)
        let extra = ["--eval-every", "60", "--dropout", "0.0", "--batch", "16", "--lr", "2e-3", "--warmup", "0.05"]
        func run(_ p: String, _ more: [String] = []) throws -> CLIResult {
            try runDroplab(args(dir, corpus: corpus, out: dir + "/" + p, tokens: 300 * 1024, extra: extra + more))
        }
        var val: [String: [Double]] = [:]
        for (name, p, more) in [("fp32", "fp32", []), ("bf16", "bf16", []), ("fp32-data", "fp32", ["--data-seed", "4"])] {
            let r = try run(name, ["--precision", p] + more)
            XCTAssertEqual(r.status, 0, r.stderr)
            let m = try metrics(dir + "/" + name)
            XCTAssertEqual(Set(m.map { $0["precision"] as? String }), [p], "metrics lines record the precision")
            val[name] = m.compactMap { $0["val_loss"] as? Double }
        }
        let gaps = zip(val["bf16"]!, val["fp32"]!).map { abs($0 - $1) }
        let reference = zip(val["fp32-data"]!, val["fp32"]!).map { abs($0 - $1) }
        print("bf16 training curve: validation loss bf16 \(val["bf16"]!), fp32 \(val["fp32"]!), fp32 on other data \(val["fp32-data"]!); "
              + "largest gap \(gaps.max()!) nats, reference \(reference.max()!)")
        XCTAssertEqual(val["bf16"]!.count, 5)
        XCTAssertLessThan(gaps.max()!, reference.max()!, "bf16 moves the curve more than other data does")
        XCTAssertGreaterThan(gaps.max()!, 0, "identical curves: the bf16 run did not compute in bf16")
        let vocabSize = try String(contentsOfFile: TestData.fixtureVocab, encoding: .utf8).split(separator: "\n").count
        XCTAssertLessThan(val["bf16"]!.last!, log(Double(vocabSize)) - 1.5)
        XCTAssertLessThan(val["bf16"]!.last!, val["bf16"]!.first! - 0.2)
        let state = try Checkpoint.load(dir + "/bf16/last.h5").training!.stateJSON
        XCTAssertTrue(state.contains(#""precision":"bf16""#), state)
        for (p, other) in [("bf16", "fp32"), ("fp32", "bf16")] {
            assertOneLineError(try run(p, ["--precision", other, "--resume"]), contains: ["trained with --precision \(p)", "cannot change it to \(other)"])
        }
    }

    /// The original tokens of an exported micro-batch: the label where a token was masked, else the input.
    func exportedTokens(_ path: String, _ i: Int) throws -> (shape: [Int], tokens: [Int64]) {
        let f = try HDF5File.open(path)
        defer { f.close() }
        let ids = try f.readInt64s(String(format: "ids-%06d", i)), labels = try f.readInt64s(String(format: "labels-%06d", i))
        return (ids.shape, zip(ids.values, labels.values).map { $1 >= 0 ? $1 : $0 })
    }

    /// --short-seq-len cuts the first steps' sequences from the same units, in the same order,
    /// as the long sequences would have been (exported with --export-batches), then switches.
    func testShortSequencePhaseCutsTheSameUnits() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try TestData.wikiSample(bytes: 300_000, in: dir)
        let tokens = 10 * 8 * 64
        let long = try runDroplab(args(dir, corpus: corpus, out: dir + "/long", tokens: tokens, extra: ["--export-batches", "10", "--short-seq-len", "0"]))
        XCTAssertEqual(long.status, 0, long.stderr)
        let short = try runDroplab(args(dir, corpus: corpus, out: dir + "/short", tokens: tokens,
                                        extra: ["--export-batches", "10", "--short-seq-len", "22", "--short-seq-fraction", "0.3"]))
        XCTAssertEqual(short.status, 0, short.stderr)
        XCTAssertTrue(short.stderr.contains("the first 3 steps at sequence length 22 (24 sequences per micro-batch)"), short.stderr)
        for step in 0..<10 {
            let l = try exportedTokens(dir + "/long/batches.h5", step), s = try exportedTokens(dir + "/short/batches.h5", step)
            XCTAssertEqual(l.shape, [8, 64])
            guard step < 3 else { XCTAssertEqual(s.shape, [8, 64]); continue }
            XCTAssertEqual(s.shape, [24, 22], "step \(step + 1)")
            for unit in 0..<8 {
                for piece in 0..<3 {   // 62 tokens per unit: three pieces of 20, the last 2 tokens dropped
                    let cut = Array(s.tokens[(unit * 3 + piece) * 22 ..< (unit * 3 + piece + 1) * 22])
                    let from = unit * 64 + 1 + piece * 20
                    XCTAssertEqual(cut, [2] + Array(l.tokens[from ..< from + 20]) + [3], "step \(step + 1) unit \(unit) piece \(piece)")
                }
            }
        }
        // the initial weights are the same and are what the run started from
        let a = try datasets(dir + "/long/init.h5"), b = try datasets(dir + "/short/init.h5")
        XCTAssertEqual(a, b)
    }

    func testNonFiniteLossStopsAndKeepsLastGoodCheckpoint() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try TestData.wikiSample(bytes: 300_000, in: dir)
        // an absurd learning rate overflows the weights after the first update
        let r = try runDroplab(args(dir, corpus: corpus, out: dir + "/run", tokens: 20 * 512,
                                    extra: ["--lr", "1e38", "--warmup", "0", "--save-every", "1", "--decay", "constant"]))
        assertOneLineError(r, contains: ["step 1", "stopping; last good checkpoint kept"])
        // no non-finite checkpoint was written, and no temporary file is left behind
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/run")
        XCTAssertFalse(files.contains { $0.hasSuffix(".h5") || $0.contains(".tmp") }, "\(files)")
    }

    func testEndOfDataStopsSingleEpoch() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try TestData.wikiSample(bytes: 400_000, in: dir)
        let r = try runDroplab(args(dir, corpus: corpus, out: dir + "/run", tokens: 10_000_000, extra: ["--batch", "32", "--eval-every", "0"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("end of data"), r.stdout)
        // the schedule spans the steps the corpus gives: the last step's lr is the last of the
        // linear decay, and the run ends with a validation line
        let m = try metrics(dir + "/run")
        let steps = m.last!["step"] as! Int
        XCTAssertTrue(r.stderr.contains("\(steps) steps of 32x64"), r.stderr)
        let expectedLR = 1e-3 / Double(steps - Int((0.1 * Double(steps)).rounded()))
        // lr = peak (1 - t) in float32 with t = (span - 1) / span: 1 - t is exact but carries t's
        // rounding, magnified by span, so the relative error is <= (span + 3) u (span + 3 roundings
        // of peak, t and the product): 3e-6 for the ~40 steps here; 1e-5 holds up to span = 160
        XCTAssertEqual(m.last!["lr"] as! Double, expectedLR, accuracy: 1e-5 * expectedLR)
        XCTAssertNotNil(m.last!["val_loss"] as? Double, "\(m.last!)")
    }

    /// metrics.jsonl lines as written, without the one timing field (tokens_per_s): a resumed
    /// run must reproduce every other byte of every line.
    func linesWithoutTiming(_ run: String) throws -> [String] {
        try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            $0.replacingOccurrences(of: #","tokens_per_s":[^,}]*"#, with: "", options: .regularExpression)
        }
    }

    /// Every dataset of a checkpoint (weights, Adam moments, training state, vocabulary) as raw bytes.
    func datasets(_ path: String) throws -> [String: [UInt8]] {
        let f = try HDF5File.open(path)
        var out: [String: [UInt8]] = [:]
        func walk(_ group: String) throws {
            for g in try f.groupNames(in: group) { try walk(group.isEmpty ? g : group + "/" + g) }
            for d in try f.datasetNames(in: group) {
                let name = group.isEmpty ? d : group + "/" + d
                if let floats = try? f.readFloats(name) {
                    out[name] = floats.values.withUnsafeBytes { Array($0) }
                } else {
                    out[name] = try f.readBytes(name)
                }
            }
        }
        try walk("")
        out["@config"] = Array(try f.stringAttribute("config").utf8)
        return out
    }

    /// SIGKILL at a random checkpointed step that falls inside a log window, with gradient
    /// accumulation, then --resume: every dataset of last.h5 is byte-identical to the
    /// uninterrupted run's, and so is metrics.jsonl (but for tokens_per_s).
    func testResumeAfterSIGKILLIsBitExact() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try TestData.wikiSample(bytes: 600_000, in: dir)
        let tokens = 40 * 8 * 64 * 2
        let extra = ["--accumulation", "2", "--log-every", "7", "--save-every", "3", "--eval-every", "12", "--seed", "5",
                     "--short-seq-len", "16", "--short-seq-fraction", "0.3"]
        let full = try runDroplab(args(dir, corpus: corpus, out: dir + "/a", tokens: tokens, extra: extra))
        XCTAssertEqual(full.status, 0, full.stderr)

        var generator = SystemRandomNumberGenerator()
        let killStep = stride(from: 3, to: 36, by: 3).filter { $0 % 7 != 0 }.randomElement(using: &generator)!
        let p = Process()
        p.executableURL = droplabExecutable()
        p.arguments = args(dir, corpus: corpus, out: dir + "/b", tokens: tokens, extra: extra)
        p.standardError = FileHandle.nullDevice; p.standardOutput = FileHandle.nullDevice
        try p.run()
        // the step's file is written before last.h5: at the first checkpoint, wait for both (on a
        // loaded machine a kill between the two writes left no last.h5 to resume from)
        let marker = dir + String(format: "/b/step-%06d.h5", killStep), last = dir + "/b/last.h5"
        let deadline = Date().addingTimeInterval(120)
        while !(FileManager.default.fileExists(atPath: marker) && FileManager.default.fileExists(atPath: last)) && p.isRunning && Date() < deadline {
            usleep(1000)
        }
        usleep(UInt32.random(in: 0..<150_000, using: &generator))   // somewhere inside the following steps
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        print("resume test: killed after the checkpoint of step \(killStep)")
        XCTAssertEqual(p.terminationReason, .uncaughtSignal, "the run finished before it could be killed")
        XCTAssertLessThan(try metrics(dir + "/b").count, try metrics(dir + "/a").count)

        let resumed = try runDroplab(args(dir, corpus: corpus, out: dir + "/b", tokens: tokens, extra: extra + ["--resume"]))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from"), resumed.stderr)
        XCTAssertEqual(try linesWithoutTiming(dir + "/b"), try linesWithoutTiming(dir + "/a"))
        let a = try datasets(dir + "/a/last.h5"), b = try datasets(dir + "/b/last.h5")
        XCTAssertEqual(a.keys.sorted(), b.keys.sorted())
        XCTAssertTrue(a.keys.contains("training/adam_v/bert.embeddings.word_embeddings.weight") && a.keys.contains("training/state.json"))
        for k in a.keys.sorted() where a[k] != b[k] { XCTFail("dataset \(k) differs after resume") }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/b")
        XCTAssertFalse(files.contains { $0.contains(".tmp-") }, "no temporary file is left: \(files)")
    }

    /// In process: options that differ only in --dropout-seed build the same initial weights and
    /// the same first batch (masked ids and labels) and draw other dropout masks (another loss
    /// on that batch); --data-seed changes only the batch, --init-seed only the weights.
    func testDropoutSeedSharesInitAndData() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try TestData.wikiSample(bytes: 200_000, in: dir)
        let tok = try WordPieceTokenizer(vocabFile: TestData.fixtureVocab)
        let cache = TokenShardCache(root: dir + "/cache", files: [corpus], vocab: tok.vocab, valFraction: 0.15)
        var a = PretrainOptions()
        a.preset = "tiny"; a.seqLen = 32; a.batch = 4; a.dropout = 0.1; a.seed = 5
        XCTAssertTrue(a.seeds == (5, 5, 5), "each seed defaults to --seed")
        var b = a; b.dropoutSeed = 6
        var c = a; c.dataSeed = 6
        var d = a; d.initSeed = 6
        XCTAssertTrue(b.seeds == (5, 5, 6) && c.seeds == (5, 6, 5) && d.seeds == (6, 5, 5))

        func weights(_ o: PretrainOptions) throws -> [Float] {
            let p = try Pretrain.initialModel(o, vocabSize: tok.vocab.count).params
            return Array(UnsafeBufferPointer(start: p.values.pointer, count: p.totalCount))
        }
        func firstBatch(_ o: PretrainOptions) throws -> MLMExample {
            var data = Pretrain.trainingData(o, cache: cache, tokenizer: tok, log: { _ in })
            return try XCTUnwrap(try data.next())
        }
        let wa = try weights(a), ba = try firstBatch(a)
        XCTAssertEqual(try weights(b), wa, "the dropout seed leaves the initial weights")
        let bb = try firstBatch(b)
        XCTAssertEqual(bb.batch.ids, ba.batch.ids, "... and the masked ids")
        XCTAssertEqual(bb.labels, ba.labels, "... and the labels")
        XCTAssertEqual(try weights(c), wa)
        XCTAssertNotEqual(try firstBatch(c).batch.ids, ba.batch.ids, "the data seed draws another batch")
        XCTAssertNotEqual(try weights(d), wa, "the init seed draws other weights")
        XCTAssertEqual(try firstBatch(d).labels, ba.labels)

        // the masks: the dropout seed's plan gives another loss on the same model and batch
        let model = try Pretrain.initialModel(a, vocabSize: tok.vocab.count)
        func loss(_ o: PretrainOptions) -> Float {
            Pretrain.mlmLoss(Tape(), model, ba, DropoutPlan(hidden: o.dropout, attention: o.dropout, seed: o.seeds.dropout, step: 0)).scalar
        }
        XCTAssertEqual(loss(a), loss(c), "the same dropout seed: the same masks")
        XCTAssertNotEqual(loss(a), loss(b), "another dropout seed: other masks")
    }

    /// Through the CLI: --seed S is --init-seed S --data-seed S --dropout-seed S byte for byte;
    /// without dropout another --dropout-seed ends in the same weights (it touches nothing else),
    /// with dropout in others. Logging options (log, eval, save every step) change no weight and
    /// not the final validation line, which is why they are not part of a recipe job's identity.
    func testSeedFlagsAndLoggingOptionsEndToEnd() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try TestData.wikiSample(bytes: 300_000, in: dir)
        func run(_ name: String, _ extra: [String]) throws -> [String: [UInt8]] {
            let r = try runDroplab(args(dir, corpus: corpus, out: dir + "/" + name, tokens: 6 * 8 * 64,
                                        extra: ["--val-sequences", "8", "--seed", "5"] + extra))
            XCTAssertEqual(r.status, 0, r.stderr)
            return try datasets(dir + "/" + name + "/last.h5")
        }
        func weights(_ d: [String: [UInt8]]) -> [String: [UInt8]] { d.filter { !$0.key.hasPrefix("training/") } }
        let plain = try run("plain", [])
        XCTAssertEqual(try run("explicit", ["--init-seed", "5", "--data-seed", "5", "--dropout-seed", "5"]), plain)
        XCTAssertNotEqual(weights(try run("masks", ["--dropout-seed", "6"])), weights(plain))
        let still = try run("still", ["--dropout", "0"])
        XCTAssertEqual(weights(try run("still6", ["--dropout", "0", "--dropout-seed", "6"])), weights(still))

        let logged = try run("logged", ["--log-every", "1", "--eval-every", "1", "--save-every", "1"])
        XCTAssertEqual(weights(logged), weights(plain), "logging options change no weight")
        let last = { (name: String) in try self.metrics(dir + "/" + name).last!.filter { $0.key != "tokens_per_s" }.mapValues { "\($0)" } }
        XCTAssertEqual(try last("logged"), try last("plain"), "nor the final metrics line")
        XCTAssertGreaterThan(try metrics(dir + "/logged").filter { $0["val_loss"] != nil }.count, 1)
    }

    func testSIGINTSavesAndExitsZero() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try TestData.wikiSample(bytes: 600_000, in: dir)
        let p = Process()
        p.executableURL = droplabExecutable()
        p.arguments = args(dir, corpus: corpus, out: dir + "/run", tokens: 100_000_000, extra: ["--log-every", "1"])
        let out = Pipe()
        p.standardOutput = out; p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        while ((try? metrics(dir + "/run").count) ?? 0) < 3 && p.isRunning && Date() < deadline { usleep(5000) }
        kill(p.processIdentifier, SIGINT)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertTrue(text.contains("interrupted"), text)
        let inspect = try runDroplab(["inspect", dir + "/run/last.h5"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("\"step\""), inspect.stdout)
    }

    func testBadInputs() throws {
        let dir = try temporaryDirectory(self)
        let corpus = try TestData.wikiSample(bytes: 100_000, in: dir)
        let run = dir + "/run"
        func fails(_ a: [String], _ needles: [String], file: StaticString = #filePath, line: UInt = #line) throws {
            assertOneLineError(try runDroplab(a), contains: needles, file: file, line: line)
        }
        try fails(args(dir, corpus: dir + "/missing.txt", out: run, tokens: 5000), ["missing.txt", "no such file"])
        FileManager.default.createFile(atPath: dir + "/empty.txt", contents: Data())
        try fails(args(dir, corpus: dir + "/empty.txt", out: run, tokens: 5000), ["empty.txt", "empty"])
        try FileManager.default.createDirectory(atPath: dir + "/emptydir", withIntermediateDirectories: true)
        try fails(args(dir, corpus: dir + "/emptydir", out: run, tokens: 5000), ["emptydir"])
        var a = args(dir, corpus: corpus, out: run, tokens: 5000)
        a[a.firstIndex(of: "--vocab")! + 1] = dir + "/novocab.txt"
        try fails(a, ["novocab.txt"])
        try "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n".write(toFile: dir + "/nomask.txt", atomically: true, encoding: .utf8)
        a[a.firstIndex(of: "--vocab")! + 1] = dir + "/nomask.txt"
        try fails(a, ["nomask.txt", "[MASK]"])
        try fails(args(dir, corpus: corpus, out: run, tokens: 5000, extra: ["--seq-len", "1000"]), ["--seq-len", "1000"])
        try fails(args(dir, corpus: corpus, out: run, tokens: 5000, extra: ["--val-fraction", "1e-9"]), ["corpus.txt", "--val-fraction"])
        try fails(args(dir, corpus: corpus, out: run, tokens: 5000, extra: ["--preset", "huge"]), ["huge"])
        try fails(args(dir, corpus: corpus, out: run, tokens: 5000, extra: ["--dropout", "1.5"]), ["--dropout"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/last.h5"), "failed runs write no checkpoint")

        // a finished run is not overwritten, and --resume must keep the settings
        let ok = try runDroplab(args(dir, corpus: corpus, out: run, tokens: 4 * 512))
        XCTAssertEqual(ok.status, 0, ok.stderr)
        let before = try Data(contentsOf: URL(fileURLWithPath: run + "/last.h5"))
        try fails(args(dir, corpus: corpus, out: run, tokens: 4 * 512), ["already holds a run", "--resume"])
        try fails(args(dir, corpus: corpus, out: run, tokens: 4 * 512, extra: ["--resume", "--seq-len", "32"]), ["--resume", "seqLen"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: run + "/last.h5")), before)
    }
}
