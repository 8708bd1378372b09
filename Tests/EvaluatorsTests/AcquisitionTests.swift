// `droplab eval acquisition` on a tiny run over a small facts corpus: a point per saved
// checkpoint (in step order, with its training tokens), a group per (bucket, split) of the
// probe file, and at the last checkpoint the same per-group accuracy as `eval consistency`'s
// per-probe ranks on the same probes (an independent scoring path); the job directory holds the
// result and the figure, and the summary gives the last point's rows.

@testable import Datasets
@testable import Evaluators
import Foundation
import TestSupport
import XCTest

final class AcquisitionTests: XCTestCase {
    func testCurvesPerBucketAndSplitAgreeWithConsistency() throws {
        let data = TestData.sharedData
        guard FileManager.default.fileExists(atPath: data + "/pararel/trex_lms_vocab") else { throw XCTSkip("no shared data at \(data)") }
        let dir = try temporaryDirectory(self)
        let co = FactsCorpusTests.small(dir + "/facts")
        _ = try FactsCorpus.write(co, log: { _ in })
        let pre = try runDroplab(["pretrain", "--corpus", dir + "/facts/corpus.txt", "--vocab", dir + "/facts/vocab.txt", "--preset", "tiny",
                                  "--tokens", "60000", "--seq-len", "64", "--short-seq-len", "0", "--batch", "8", "--save-every", "20",
                                  "--eval-every", "1000", "--val-fraction", "0.1", "--dropout", "0", "--out", dir + "/run"], cwd: dir)
        XCTAssertEqual(pre.status, 0, pre.stderr)
        let r = try runDroplab(["eval", "acquisition", dir + "/run", "--probes", dir + "/facts/probes.jsonl", "--per-group", "0"], cwd: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        let job = dir + "/" + resultsDirectory(r)
        let result = try JSONDecoder().decode(AcquisitionResult.self, from: Data(contentsOf: URL(fileURLWithPath: job + "/result.json")))
        XCTAssertEqual(result.points.map(\.step), [20, 40, 60, 80, 100, 117])
        XCTAssertEqual(result.points.map(\.checkpoint).last, "last.h5")
        XCTAssertTrue(result.points.allSatisfy { $0.tokens == $0.step * 8 * 64 }, "\(result.points.map(\.tokens))")
        XCTAssertTrue(FileManager.default.fileExists(atPath: job + "/acquisition.svg"))
        XCTAssertTrue(r.stdout.contains("acquisition: Accuracy at [MASK] at the end, never stated (control), held-out patterns (%):"), r.stdout)

        // the groups are the probe file's (bucket, split) pairs with all their probes
        let lines = try String(contentsOfFile: dir + "/facts/probes.jsonl", encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        var expected: [String: Int] = [:]
        var groupOf: [String: String] = [:]                  // prompt -> "bucket/split"
        for l in lines {
            let key = "\(l["bucket"] as! Int)/\(l["split"] as! String)"
            expected[key, default: 0] += 1
            groupOf[l["prompt"] as! String] = key
        }
        let last = try XCTUnwrap(result.points.last)
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: last.groups.map { ("\($0.bucket)/\($0.split)", $0.probes) }), expected)

        // eval consistency on the same probes: its per-probe ranks give the same group accuracies
        var o = ConsistencyOptions(); o.source.probes = dir + "/facts/probes.jsonl"
        let (_, records) = try Consistency.run(checkpoint: dir + "/run/last.h5", options: o, log: { _ in })
        var correct: [String: Int] = [:]
        for rec in records where rec.rank == 0 { correct[groupOf[rec.prompt]!, default: 0] += 1 }
        for g in last.groups {
            // Both score the same probes with the same weights, in other batches (padding, GEMM
            // shapes): a probe can only flip where the target's logit ties the top one within
            // float32 rounding of the forward pass (~1e-5 relative), an event of probability far
            // below 1/1000 per probe on logits spread over several units; one flip per group is allowed.
            XCTAssertLessThanOrEqual(abs(g.correct - correct["\(g.bucket)/\(g.split)", default: 0]), 1, "\(g)")
        }
    }
}
