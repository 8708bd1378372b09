// `droplab eval squad` end to end: a small random BERT finetuned on 64 real SQuAD v1.1 train
// questions overfits them (training loss falls, EM/F1 on those questions far above trivial
// baselines), the outputs are complete, a saved finetuned checkpoint re-evaluates to the same
// scores, v2.0 runs report HasAns/NoAns and the best threshold, and bad input gives one-line
// errors and writes nothing.

import BERT
import Checkpoint
@testable import Evaluators
import Foundation
import TestSupport
import XCTest

final class SquadEndToEndTests: XCTestCase {
    /// A random BERT (L2 H64 A2 FFN256, 128 positions) over the fixture vocabulary, as an MLM checkpoint.
    func randomCheckpoint(_ dir: String) throws -> String {
        let vocab = try String(contentsOfFile: TestData.fixtureVocab, encoding: .utf8).split(separator: "\n").map(String.init)
        let config = BertConfig(vocabSize: vocab.count, hiddenSize: 64, numLayers: 2, numHeads: 2, intermediateSize: 256, maxPositions: 128)
        let model = BertModel(config: config, head: .mlm)
        model.initialize(seed: 7)
        let path = dir + "/tiny/last.h5"
        try Checkpoint.save(model, vocab: vocab, to: path)
        return path
    }

    /// The first `count` questions of real SQuAD v1.1 train whose paragraph is at most 400
    /// characters (one 128-token window each), written as a SQuAD file.
    func trainSlice(_ dir: String, count: Int) throws -> (path: String, questions: [(context: String, answers: [String])]) {
        let train = TestData.sharedData + "/squad/train-v1.1.json"
        guard FileManager.default.fileExists(atPath: train) else { throw XCTSkip("no \(train)") }
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: train))) as! [String: Any]
        var paragraphs: [[String: Any]] = [], questions: [(String, [String])] = []
        outer: for article in root["data"] as! [[String: Any]] {
            for p in article["paragraphs"] as! [[String: Any]] {
                let context = p["context"] as! String
                guard context.unicodeScalars.count <= 400 else { continue }
                let qas = Array((p["qas"] as! [[String: Any]]).prefix(count - questions.count))
                paragraphs.append(["context": context, "qas": qas])
                for q in qas { questions.append((context, (q["answers"] as! [[String: Any]]).map { $0["text"] as! String })) }
                if questions.count == count { break outer }
            }
        }
        let path = dir + "/slice.json"
        try JSONSerialization.data(withJSONObject: ["version": "1.1", "data": [["title": "slice", "paragraphs": paragraphs]]])
            .write(to: URL(fileURLWithPath: path))
        return (path, questions)
    }

    func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
    }

    func testTinyFinetuneOverfitsTrainingQuestions() throws {
        let dir = try temporaryDirectory(self)
        let ckpt = try randomCheckpoint(dir)
        let (slice, questions) = try trainSlice(dir, count: 64)
        let epochs = "20", lr = "3e-3"
        let started = Date()
        let r = try runDroplab(["eval", "squad", ckpt, "--train", slice, "--dev", slice, "--epochs", epochs, "--batch", "16",
                                "--lr", lr, "--finetune-dropout", "0", "--max-seq-len", "128", "--doc-stride", "32",
                                "--max-query-len", "32", "--log-every", "4", "--results", dir + "/results", "--save"])
        let seconds = Date().timeIntervalSince(started)
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = try json(resultsDirectory(r) + "/result.json")
        let metrics = out["metrics"] as! [String: Any]
        let em = metrics["exact"] as! Double, f1 = metrics["f1"] as! Double
        let finetune = out["finetune"] as! [String: Any]
        let losses = (finetune["losses"] as! [[Double]]).map { $0[1] }

        // trivial baselines on the same questions: the first k words of the context, the first sentence
        var baselines: [(String, Double, Double)] = []
        func baseline(_ name: String, _ predict: (String) -> String) {
            let items = questions.enumerated().map { SquadMetrics.Item(id: "\($0.offset)", answers: $0.element.answers, prediction: predict($0.element.context)) }
            let s = SquadMetrics.evaluate(items, version: .v1)
            baselines.append((name, s.exact, s.f1))
        }
        for k in 1...5 { baseline("first \(k) words") { $0.split(separator: " ").prefix(k).joined(separator: " ") } }
        baseline("first sentence") { String($0.split(separator: ".").first ?? "") }
        let bestEM = baselines.map(\.1).max()!, bestF1 = baselines.map(\.2).max()!
        print(String(format: "squad tiny finetune: %d questions, %@ epochs in %.1fs: loss %.3f -> %.3f, EM %.2f F1 %.2f; best trivial baseline EM %.2f F1 %.2f (%@)",
                     questions.count, epochs, seconds, losses.first ?? .nan, losses.last ?? .nan, em, f1, bestEM, bestF1,
                     baselines.map { String(format: "%@ %.1f/%.1f", $0.0, $0.1, $0.2) }.joined(separator: ", ")))

        XCTAssertGreaterThanOrEqual(losses.count, 5)
        // Margins on the run's outcome, which is the same on every OpenBLAS kernel (measured identical
        // on Cooperlake, Haswell and Prescott): loss 4.89 -> 0.84 (2.9x inside the halving); EM 76.6
        // and F1 79.9 against 4.7 + 25 and 12.5 + 25 (30 and 27 of the 64 questions of margin).
        XCTAssertLessThan(losses.last!, 0.5 * losses.first!, "training loss should fall")
        XCTAssertGreaterThan(em, bestEM + 25, "EM should beat the trivial baselines")
        XCTAssertGreaterThan(f1, bestF1 + 25, "F1 should beat the trivial baselines")

        // outputs: settings, hashes, official-format predictions for every question
        XCTAssertEqual(metrics["total"] as? Int, 64)
        let dev = out["dev"] as! [String: Any]
        XCTAssertEqual((dev["sha256"] as? String)?.count, 64)
        XCTAssertEqual(dev["skippedTotal"] as? Int, 0)
        XCTAssertEqual((out["options"] as? [String: Any])?["finetuneDropout"] as? Double, 0)
        let preds = try json(resultsDirectory(r) + "/predictions.json") as! [String: String]
        XCTAssertEqual(preds.count, 64)
        XCTAssertTrue(r.stderr.contains("SQuAD eval:"), "evaluation progress on stderr")
        XCTAssertTrue(r.stdout.contains("EM"), r.stdout)

        // the saved finetuned checkpoint (QA head) evaluates to the same scores without finetuning
        let saved = resultsDirectory(r) + "/finetune/last.h5"
        XCTAssertEqual(try Checkpoint.load(saved).model.head, .qa)
        // exact: the saved float32 weights are the finetuned ones, evaluated with the same --eval-batch
        // (same shapes) by the same kernel on this machine
        let again = try runDroplab(["eval", "squad", saved, "--dev", slice, "--epochs", "0", "--max-seq-len", "128",
                                    "--doc-stride", "32", "--max-query-len", "32", "--results", dir + "/results2"])
        XCTAssertEqual(again.status, 0, again.stderr)
        let m2 = try json(resultsDirectory(again) + "/result.json")["metrics"] as! [String: Any]
        XCTAssertEqual(m2["exact"] as? Double, em)
        XCTAssertEqual(m2["f1"] as? Double, f1)
        XCTAssertEqual(try json(resultsDirectory(again) + "/predictions.json") as! [String: String], preds)
    }

    func testVersion2ReportsSplitsAndBestThreshold() throws {
        let dir = try temporaryDirectory(self)
        let ckpt = try randomCheckpoint(dir)
        let dev2 = TestData.sharedData + "/squad/dev-v2.0.json"
        guard FileManager.default.fileExists(atPath: dev2) else { throw XCTSkip("no \(dev2)") }
        let r = try runDroplab(["eval", "squad", ckpt, "--version", "2.0", "--train", dev2, "--dev", dev2, "--max-train-examples", "24",
                                "--max-dev-examples", "24", "--epochs", "1", "--batch", "8", "--max-seq-len", "128", "--doc-stride", "32",
                                "--max-query-len", "32", "--best-threshold", "--results", dir + "/results"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = try json(resultsDirectory(r) + "/result.json")
        let m = out["metrics"] as! [String: Any]
        for k in ["exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"] {
            XCTAssertNotNil(m[k] as? Double, k)
        }
        XCTAssertEqual((m["HasAns_total"] as! Int) + (m["NoAns_total"] as! Int), 24)
        // >= by construction, as the threshold sweep passes through the default threshold's predictions;
        // but the sweep sums the 24 F1 values (<= 1) in another order than the mean, so equal scores may
        // differ by <= 100 γ_24 * 24 / 24 = 2.7e-13 (Float64): 1e-9 of slack (was an exact comparison)
        XCTAssertGreaterThanOrEqual((m["best_f1"] as! Double) + 1e-9, m["f1"] as! Double, "the best threshold is at least as good as 0")
        let odds = try json(resultsDirectory(r) + "/null-odds.json")
        XCTAssertEqual(odds.count, 24)
        XCTAssertEqual(try json(resultsDirectory(r) + "/predictions.json").count, 24)
        XCTAssertFalse(FileManager.default.fileExists(atPath: resultsDirectory(r) + "/finetune"), "no --save: the run directory is removed")
    }

    func testBadInputsGiveOneLineErrorsAndWriteNothing() throws {
        let dir = try temporaryDirectory(self)
        let ckpt = try randomCheckpoint(dir)
        let results = dir + "/results"
        let dev = TestData.sharedData + "/squad/dev-v1.1.json"
        func fails(_ extra: [String], checkpoint: String? = nil, _ needles: [String], line: UInt = #line) throws {
            let r = try runDroplab(["eval", "squad", checkpoint ?? ckpt, "--results", results, "--max-seq-len", "128",
                                    "--doc-stride", "32", "--max-query-len", "32", "--epochs", "0"] + extra)
            assertOneLineError(r, contains: needles, line: line)
        }
        try fails(["--dev", dev], checkpoint: dir + "/missing.h5", ["missing.h5", "no such file"])
        try "not a checkpoint".write(toFile: dir + "/text.h5", atomically: true, encoding: .utf8)
        try fails(["--dev", dev], checkpoint: dir + "/text.h5", ["text.h5", "not an HDF5 file"])
        try fails(["--dev", dev, "--version", "3.0"], ["--version", "3.0"])
        try fails(["--dev", dir + "/nodev.json"], ["nodev.json", "no such file"])
        try fails(["--data-dir", dir + "/nowhere"], ["nowhere/squad/dev-v1.1.json"])
        _ = FileManager.default.createFile(atPath: dir + "/empty.json", contents: Data())
        try fails(["--dev", dir + "/empty.json"], ["empty.json", "empty"])
        try "{\"version\": \"1.1\", \"data\": [{\"title\": ".write(toFile: dir + "/broken.json", atomically: true, encoding: .utf8)
        try fails(["--dev", dir + "/broken.json"], ["broken.json", "not valid JSON"])
        try fails(["--dev", dev, "--epochs", "1", "--train", dir + "/broken.json"], ["broken.json", "not valid JSON"])
        try fails(["--dev", dev, "--max-seq-len", "512"], ["--max-seq-len", "512", "max positions 128"])
        try fails(["--dev", dev, "--max-seq-len", "64"], ["--max-seq-len", "too small"])
        try fails(["--dev", dev, "--best-threshold"], ["--best-threshold", "2.0"])
        try fails(["--dev", dev, "--finetune-dropout", "1"], ["--finetune-dropout"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: results), "failed runs write nothing")
    }
}
