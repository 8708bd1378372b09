// MEND on the tiny model that knows its facts: every fact gets a counterfactual object (the
// next country or field), so nothing is right before the edit; an editor trained on some
// concepts' facts must beat an untrained one on the other concepts' facts.

@testable import Evaluators
import Foundation
import TestSupport
import XCTest

final class MendTests: XCTestCase {
    func testTrainedEditorBeatsUntrainedOnHeldOutConcepts() throws {
        let dir = try temporaryDirectory(self)
        let lines = FactModel.probeLines().map { line -> String in
            var o = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let objects = o["relation"] as! String == "lives" ? FactModel.countries : FactModel.fields
            o["target"] = objects[(objects.firstIndex(of: o["target"] as! String)! + 1) % objects.count]
            return String(decoding: try! JSONSerialization.data(withJSONObject: o, options: .sortedKeys), as: UTF8.self)
        }
        try lines.joined(separator: "\n").write(toFile: dir + "/counterfactual.jsonl", atomically: true, encoding: .utf8)
        var o = MendOptions()
        o.source.probes = dir + "/counterfactual.jsonl"; o.steps = 60; o.lr = 1e-3; o.batchFacts = 8; o.unrelated = 4
        o.trainShare = 0.7; o.editWeight = 1; o.rank = 32
        let (r, records) = try Mend.run(checkpoint: FactModel.trained.checkpoint, options: o, resultsDir: dir, log: { print($0) })
        print("mend: before edit \(r.beforeEditSuccess) paraphrase \(r.beforeParaphraseSuccess); trained \(r.trained); untrained \(r.untrained); loss \(r.firstLoss ?? .nan) -> \(r.lastLoss ?? .nan)")
        XCTAssertEqual(r.beforeEditSuccess, 0)
        XCTAssertEqual(records.count, r.testFacts)
        XCTAssertGreaterThan(r.testFacts, 3)
        // With 22 training facts of 8 concepts the editor does not flip unseen objects to top-1
        // (success 0 for both), but it moves their probability 1000x more than the untrained
        // editor (a scaled gradient step) while keeping most unrelated predictions.
        // Margins on outcomes of the committed fact model and a 60-step editor, which agree across
        // OpenBLAS kernels to ~1e-5 relative (Cooperlake, Haswell, Prescott): loss 8.05 -> 0.89 (4.5x
        // inside the halving); probability changes 0.020 and 0.017 against max(100 * 1.7e-5, 0.005) =
        // 0.005 (3.4x or more); localization 0.95 = 18/19 against 0.8 (2 probes of margin).
        XCTAssertLessThan(r.lastLoss!, r.firstLoss! / 2)
        XCTAssertGreaterThan(r.trained.paraphraseProbChange, max(100 * r.untrained.paraphraseProbChange, 0.005))
        XCTAssertGreaterThan(r.trained.editProbChange, max(100 * r.untrained.editProbChange, 0.005))
        XCTAssertGreaterThan(r.trained.maskEditLocalization, 0.8)
        XCTAssertTrue(FileManager.default.fileExists(atPath: r.editor))
    }
}
