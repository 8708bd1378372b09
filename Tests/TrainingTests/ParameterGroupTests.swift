// Parameter groups: AdamW steps (and decays) exactly the trainable tensors of every member;
// frozen tensors keep every bit, record no backward step and get no gradient.

import Autograd
import BERT
import TestSupport
import Training
import XCTest

final class ParameterGroupTests: XCTestCase {
    func testOnlyTrainableTensorsChange() {
        let config = BertConfig(vocabSize: 30, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 32, maxPositions: 16)
        let model = BertModel(config: config, head: .mlm)
        model.initialize(seed: 1)
        let extra = Parameters([("edit.a", [3, 4]), ("edit.b", [5])])
        extra.values.pointer.update(repeating: 0.5, count: extra.totalCount)
        let trains: (String) -> Bool = { $0.contains("layer.1.") }
        let group = ParameterGroup().adding(model.params, trains: trains, decays: AdamW.decays)
                                    .adding(extra, trains: { $0 == "edit.a" }, decays: { _ in true })
        let before = model.params.values.buffer.map(\.bitPattern), extraBefore = extra.values.buffer.map(\.bitPattern)
        let opt = AdamW(group, config: AdamWConfig(weightDecay: 0.5))
        let batch = Batch(ids: (0..<16).map { Int32(5 + $0 % 20) }, batchSize: 2, seqLen: 8)
        let labels = (0..<16).map { $0 % 3 == 0 ? Int32(7) : -100 }
        for _ in 0..<3 {
            opt.zeroGrads()
            let tape = Tape()
            tape.backward(model.mlmLoss(tape, batch, labels: labels))
            for e in model.params.entries where !trains(e.name) {
                XCTAssertTrue(model.params[e.name].gradValues.allSatisfy { $0 == 0 }, "\(e.name): frozen tensor got a gradient")
            }
            opt.update(lr: 1e-2)
        }
        let after = model.params.values.buffer.map(\.bitPattern)
        for e in model.params.entries {
            let changed = after[e.offset..<e.offset + e.count] != before[e.offset..<e.offset + e.count]
            XCTAssertEqual(changed, trains(e.name), "\(e.name)")
        }
        // edit.a has no gradient (unused by the loss) but decays; edit.b is frozen: untouched
        XCTAssertTrue(extra["edit.a"].values.allSatisfy { $0 < 0.5 }, "a trainable tensor decays")
        XCTAssertEqual(extra["edit.b"].values.map(\.bitPattern), Array(extraBefore[12..<17]))
        XCTAssertEqual(trains("bert.encoder.layer.1.output.dense.weight"), model.params["bert.encoder.layer.1.output.dense.weight"].requiresGrad)
        XCTAssertFalse(model.params["bert.encoder.layer.0.output.dense.weight"].requiresGrad)
    }
}
