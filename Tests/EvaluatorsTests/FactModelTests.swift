// The fact model's recipe still makes a model that knows its facts (the committed fixture the
// knowledge evaluator tests run on was made by it; see FactModel.fixture).

@testable import Evaluators
import Foundation
import TestSupport
import XCTest

final class FactModelTests: XCTestCase {
    /// Training from scratch gives a model that answers its 80 fact probes at [MASK]. It
    /// memorises them (train accuracy 1.0 under every kernel tried: Cooperlake, SkylakeX, Haswell,
    /// Sandybridge, Prescott), so 0.95 leaves four probes of margin for a kernel's rounding, and a
    /// broken trainer or cloze batch (chance: 1 in 9 or 4) fails by far. With
    /// DROPLAB_WRITE_FIXTURES=1 the trained weights replace the committed fixture.
    func testTrainingGivesAModelThatKnowsItsFacts() throws {
        let path = try temporaryDirectory(self) + "/fact_model.h5"
        try FactModel.train(to: path)
        var o = ConsistencyOptions(); o.source.probes = FactModel.trained.probes
        let (r, _) = try Consistency.run(checkpoint: path, options: o, log: { _ in })
        print("trained fact model: accuracy \(r.accuracy)")
        XCTAssertGreaterThan(r.accuracy, 0.95)
        if ProcessInfo.processInfo.environment["DROPLAB_WRITE_FIXTURES"] == "1" {
            try? FileManager.default.removeItem(atPath: FactModel.fixture)
            try FileManager.default.copyItem(atPath: path, toPath: FactModel.fixture)
            print("wrote \(FactModel.fixture)")
        }
    }
}
